"""Re-encode stored videos to H.264 to save space (off by default).

Unlike the other processors this one changes a file, so it has its own method with its own
contract, :meth:`ReencodeProcessor.reencode`; ``process()`` only calls it and turns the result into
properties (``reencoded``, ``original_size``).

Encoders, detected once and logged once per processor: VA-API (``h264_vaapi``) when ffmpeg lists it
in ``-encoders`` AND a ``/dev/dri/renderD*`` character device is readable and writable; otherwise,
or when a VA-API run fails, the CPU: ``libx264 -preset veryfast -crf 28`` (Debian's ffmpeg has it),
else ``libopenh264``, else ``mpeg4`` (not H.264, but still MP4 and smaller than most phone videos).

How a file is replaced (the crash-safety story):

1. the original is probed; files without a video stream or a duration, files this processor made
   (marked with ``comment=tobs-sync re-encoded`` in the MP4 metadata) and files whose name is not
   ``.mp4``/``.m4v``/``.mov`` are left alone (the name, and so every link to it, never changes);
2. ffmpeg writes a hidden ``.tobs-tmp-reencode-<random>.mp4`` next to it (the vault's temp prefix:
   a crash leaves a file the next start removes);
3. the new file is verified (:meth:`ReencodeProcessor.verify`): ffprobe reads it, it has a video
   stream, its duration is within 1 s of the original's, and it is smaller;
4. only then it is fsynced and ``os.replace``d over the original (atomic), and the folder fsynced.
   Any failure deletes the temp file and keeps the original untouched.

Limits: video only (not video notes or animations); the first video stream and all audio streams
are kept (audio copied when MP4 can hold it, else AAC), subtitles and data streams are dropped;
re-encoding is slow (the timeout grows with the duration) and occupies one pool worker meanwhile.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import stat
import subprocess  # nosec B404  # justified: fixed argument lists, never a shell
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tobs_sync.model import MediaKind, MediaRef
from tobs_sync.processors.base import LOGGER, Properties, ToolProcessor
from tobs_sync.processors.ffprobe import FFPROBE_TIMEOUT, file_url, parse_ffprobe, run_ffprobe
from tobs_sync.vault import TEMP_PREFIX

REENCODED_MARKER = "tobs-sync re-encoded"
"""Written as the MP4 ``comment``; a file carrying it is never re-encoded again."""
MP4_SUFFIXES = frozenset({".mp4", ".m4v", ".mov"})
CPU_ENCODERS = ("libx264", "libopenh264", "mpeg4")
"""CPU encoders in order of preference."""
COPYABLE_AUDIO = frozenset({"aac", "mp3", "ac3", "eac3", "alac"})
_EVEN_SIZE = "scale=trunc(iw/2)*2:trunc(ih/2)*2,format=yuv420p"


@dataclass(frozen=True, slots=True)
class EncoderPlan:
    """What :meth:`ReencodeProcessor.detect` found: a VA-API device (or none) and a CPU encoder."""

    vaapi_device: str | None
    cpu_encoder: str | None


@dataclass(frozen=True, slots=True)
class ReencodeResult:
    """A successful re-encode: the file at ``path`` (the same path as given) now holds new bytes."""

    path: Path
    original_size: int
    new_size: int
    encoder: str


class ReencodeProcessor(ToolProcessor):
    """Replaces videos by smaller H.264 re-encodes (VA-API when usable, else CPU). Off by default."""

    name = "reencode"
    kinds = frozenset({MediaKind.VIDEO.value})
    default_enabled = False
    replaces_file = True

    def __init__(
        self,
        ffmpeg: str = "ffmpeg",
        ffprobe: str = "ffprobe",
        *,
        render_devices: str = "/dev/dri/renderD*",
        crf: int = 28,
        preset: str = "veryfast",
        duration_tolerance: float = 1.0,
        min_timeout: float = 120.0,
        timeout_per_second: float = 10.0,
    ) -> None:
        super().__init__({"ffmpeg": ffmpeg, "ffprobe": ffprobe})
        self.render_devices = render_devices
        self.crf = crf
        self.preset = preset
        self.duration_tolerance = duration_tolerance
        self.min_timeout = min_timeout
        self.timeout_per_second = timeout_per_second
        self._plan: EncoderPlan | None = None
        self._plan_lock = threading.Lock()

    # -- detection ---------------------------------------------------------------------------

    def detect(self) -> EncoderPlan:
        """Which encoders to use; computed on first call (one ``ffmpeg -encoders`` run, one log line)."""
        with self._plan_lock:
            if self._plan is None:
                self._plan = self._detect()
            return self._plan

    def _detect(self) -> EncoderPlan:
        encoders = self._list_encoders()
        device = self._render_device()
        cpu = next((name for name in CPU_ENCODERS if name in encoders), None)
        cpu_text = f"CPU encoder {cpu}" if cpu else "no CPU encoder (none of " + ", ".join(CPU_ENCODERS) + ")"
        if "h264_vaapi" in encoders and device:
            plan = EncoderPlan(device, cpu)
            LOGGER.info("reencode: VA-API available (h264_vaapi on %s), falling back to %s", device, cpu_text)
        else:
            why = "ffmpeg has no h264_vaapi encoder" if "h264_vaapi" not in encoders else (
                f"no readable and writable render device {self.render_devices}"
            )
            plan = EncoderPlan(None, cpu)
            LOGGER.info("reencode: VA-API unavailable (%s); using %s", why, cpu_text)
        return plan

    def _list_encoders(self) -> frozenset[str]:
        if not self.available():
            return frozenset()
        command = [self.tools["ffmpeg"], "-hide_banner", "-nostdin", "-encoders"]
        try:
            # A fixed argument list, no shell, no user data.
            result = subprocess.run(  # noqa: S603  # nosec B603
                command, shell=False, timeout=30, capture_output=True, stdin=subprocess.DEVNULL, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            LOGGER.warning("reencode: cannot list ffmpeg's encoders: %s", exc)
            return frozenset()
        names = set()
        for line in result.stdout.decode("utf-8", errors="replace").splitlines():
            fields = line.split()
            # " V....D libx264   description": capability flags, then the name.
            if len(fields) >= 2 and len(fields[0]) == 6 and fields[0][0] in "VAS":
                names.add(fields[1])
        return frozenset(names)

    def _render_device(self) -> str | None:
        for device in sorted(glob.glob(self.render_devices)):
            with contextlib.suppress(OSError):
                if stat.S_ISCHR(os.stat(device).st_mode) and os.access(device, os.R_OK | os.W_OK):
                    return device
        return None

    # -- the file-producing step -----------------------------------------------------------------

    def process(self, path: Path, media: MediaRef) -> Properties:
        result = self.reencode(path)
        return {} if result is None else {"reencoded": True, "original_size": result.original_size}

    def reencode(self, path: Path) -> ReencodeResult | None:
        """Replace the video at ``path`` by a verified, smaller H.264 re-encode; ``None`` if not done.

        ``None`` means the original is untouched (the reason is logged: info for "nothing to do" or
        "not smaller", warning for failures). Never raises for bad media. Blocking: call it on a
        worker thread. Not safe to run twice at once on the same path.
        """
        if not self.available():
            return None
        path = path.absolute()
        if path.suffix.lower() not in MP4_SUFFIXES:
            LOGGER.info("reencode: %s is not an MP4/MOV file; left as is", path)
            return None
        try:
            original_size = path.stat().st_size
        except OSError as exc:
            LOGGER.warning("reencode: cannot read %s: %s", path, exc)
            return None
        info = run_ffprobe(self.tools["ffprobe"], path, FFPROBE_TIMEOUT)
        if info is None:
            return None
        if _is_marked(info):
            LOGGER.info("reencode: %s was already re-encoded by tobs-sync; left as is", path)
            return None
        original = parse_ffprobe(info, source=str(path))
        duration = original.get("duration")
        if not _has_video(info) or not isinstance(duration, float):
            LOGGER.info("reencode: %s has no video stream or no duration; left as is", path)
            return None
        plan = self.detect()
        temp = path.with_name(f"{TEMP_PREFIX}reencode-{secrets.token_hex(8)}.mp4")
        try:
            return self._attempt_all(path, temp, info, original, original_size, plan)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()

    def _attempt_all(
        self, path: Path, temp: Path, info: Mapping[str, Any], original: Mapping[str, Any], original_size: int,
        plan: EncoderPlan,
    ) -> ReencodeResult | None:
        attempts: list[tuple[str, list[str], list[str]]] = []
        if plan.vaapi_device:
            attempts.append(("h264_vaapi", ["-vaapi_device", plan.vaapi_device],
                             ["-vf", "format=nv12,hwupload", "-c:v", "h264_vaapi"]))
        if plan.cpu_encoder:
            attempts.append((plan.cpu_encoder, [], self._cpu_video_args(plan.cpu_encoder)))
        if not attempts:
            LOGGER.warning("reencode: no usable encoder; %s left as is", path)
            return None
        timeout = max(self.min_timeout, float(original["duration"]) * self.timeout_per_second)
        for encoder, input_args, video_args in attempts:
            command = [
                self.tools["ffmpeg"], "-nostdin", "-hide_banner", "-v", "error", "-y", *input_args,
                "-i", file_url(path), "-map", "0:V:0", "-map", "0:a?", *video_args, *_audio_args(info),
                "-map_metadata", "0", "-metadata", f"comment={REENCODED_MARKER}", "-movflags", "+faststart",
                "-f", "mp4", file_url(temp),
            ]
            failure = self._run_ffmpeg(command, timeout)
            if failure is not None:
                LOGGER.warning("reencode: %s failed on %s: %s", encoder, path, failure)
                continue
            reason = self.verify(original, original_size, temp)
            if reason is not None:
                LOGGER.info("reencode: kept the original %s (%s output rejected: %s)", path, encoder, reason)
                continue
            new_size = temp.stat().st_size
            try:
                _replace_durably(temp, path)
            except OSError as exc:
                LOGGER.warning("reencode: cannot replace %s: %s; original kept", path, exc)
                return None
            LOGGER.info("reencode: %s re-encoded with %s, %d -> %d bytes", path, encoder, original_size, new_size)
            return ReencodeResult(path, original_size, new_size, encoder)
        return None

    def _cpu_video_args(self, encoder: str) -> list[str]:
        if encoder == "libx264":
            return ["-vf", _EVEN_SIZE, "-c:v", "libx264", "-preset", self.preset, "-crf", str(self.crf)]
        if encoder == "libopenh264":
            return ["-vf", _EVEN_SIZE, "-c:v", "libopenh264", "-b:v", "1M"]
        return ["-vf", _EVEN_SIZE, "-c:v", encoder, "-q:v", "5"]

    def _run_ffmpeg(self, command: Sequence[str], timeout: float) -> str | None:
        """``None`` on success, else why it failed."""
        try:
            # A fixed argument list, no shell; input and output are file: URLs of absolute paths.
            result = subprocess.run(  # noqa: S603  # nosec B603
                list(command), shell=False, timeout=timeout, capture_output=True, stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return f"timed out after {timeout:.0f} s"
        except OSError as exc:
            return str(exc)
        if result.returncode != 0:
            lines = [ln.strip() for ln in result.stderr.decode("utf-8", errors="replace").splitlines() if ln.strip()]
            return (lines[-1][:300] if lines else "") or f"exit {result.returncode}"
        return None

    def verify(self, original: Mapping[str, Any], original_size: int, candidate: Path) -> str | None:
        """Why the re-encoded ``candidate`` must not replace the original, or ``None`` if it may.

        ``original`` is :func:`parse_ffprobe` of the original. Checks: smaller than ``original_size``,
        readable by ffprobe, a video stream, duration within ``duration_tolerance`` seconds.
        """
        try:
            size = candidate.stat().st_size
        except OSError as exc:
            return f"cannot read it: {exc}"
        if size >= original_size:
            return f"not smaller ({size} >= {original_size} bytes)"
        info = run_ffprobe(self.tools["ffprobe"], candidate, FFPROBE_TIMEOUT)
        if info is None:
            return "ffprobe cannot read it"
        if not _has_video(info):
            return "no video stream"
        duration = parse_ffprobe(info, source=str(candidate)).get("duration")
        wanted = original.get("duration")
        if not isinstance(duration, float) or not isinstance(wanted, float):
            return "no duration"
        if abs(duration - wanted) > self.duration_tolerance:
            return f"duration {duration} s instead of {wanted} s"
        return None


def _has_video(info: Mapping[str, Any]) -> bool:
    streams = info.get("streams")
    if not isinstance(streams, list):
        return False
    return any(
        isinstance(s, Mapping) and s.get("codec_type") == "video"
        and not (isinstance(s.get("disposition"), Mapping) and s["disposition"].get("attached_pic") == 1)
        for s in streams
    )


def _is_marked(info: Mapping[str, Any]) -> bool:
    fmt = info.get("format")
    tags = fmt.get("tags") if isinstance(fmt, Mapping) else None
    return isinstance(tags, Mapping) and tags.get("comment") == REENCODED_MARKER


def _audio_args(info: Mapping[str, Any]) -> list[str]:
    streams = info.get("streams")
    codecs = {
        s.get("codec_name") for s in (streams if isinstance(streams, list) else [])
        if isinstance(s, Mapping) and s.get("codec_type") == "audio"
    }
    if codecs <= COPYABLE_AUDIO:
        return ["-c:a", "copy"]
    return ["-c:a", "aac", "-b:a", "128k"]


def _replace_durably(temp: Path, target: Path) -> None:
    """fsync ``temp``, rename it over ``target`` atomically, fsync the folder (POSIX).

    Raises ``OSError`` only before the rename (the original is then untouched).
    """
    fd = os.open(temp, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, target)
    if os.name == "posix":
        try:
            folder_fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(folder_fd)
            finally:
                os.close(folder_fd)
        except OSError as exc:  # the rename happened; only its durability is in doubt
            LOGGER.warning("reencode: cannot fsync folder %s: %s", target.parent, exc)
