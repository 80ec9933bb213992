"""Media of the simulated account: ``Photo``/``Document`` objects and the files behind them.

:class:`MediaStore` builds the TL media objects Telegram would send (photos with stripped, ``m``, ``x``
and progressive ``y`` sizes; videos and round videos with thumbnails; voice notes; and, among
documents, PDF and ZIP files, MP3 audio with performer and title, WEBP stickers, MP4 animations and PNG
images) and registers one :class:`~tobs_sync.sim.files.SimFile` per downloadable size. Media files are
valid files (:mod:`tobs_sync.sim.samples`) whose declared attributes (size, duration, width, height,
performer, title) are those of the file: photos 20-200 KB (more when a big picture needs it), videos
1-5 MB, round videos 0.3-1.5 MB, both padded to that size; voice notes, audio files, stickers and
images have their template's size; PDF/ZIP documents 5-500 KB of synthetic bytes. The DC of each
object is drawn from ``1..dcs``. It also owns file references: every media object carries the current
reference of its ``(kind, id)``, and :meth:`MediaStore.rotate_file_reference` replaces it (the old one
is refused from then on). A small pool of media is re-posted under the same id in several chats, and
"twin" documents have different ids but identical bytes (same content id).

The generated mix (:data:`MEDIA_KINDS`) is unchanged by the extra document kinds: half of the
``document`` draws become one of :data:`DOCUMENT_KINDS`, drawn from a generator of their own so every
other value of an account stays what it was. ``make_media`` accepts those kinds by name as well.

Limits: durations and sizes come from a few templates; no video covers, alternative qualities,
animated (``.tgs``) or video stickers; an explicit size that no valid file of the kind can have gives
synthetic bytes (see :mod:`tobs_sync.sim.files`).
"""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime, timedelta

from telethon.tl import types

from tobs_sync.sim import samples
from tobs_sync.sim.content import rng_for, signed64
from tobs_sync.sim.files import SimFile, document_key, photo_key
from tobs_sync.sim.samples import Sample

MEDIA_KINDS = ("photo", "video", "round", "voice", "document")
DOCUMENT_KINDS = ("audio", "sticker", "animation", "image")
PERFORMERS = ("Mira Quartet", "Los Sintéticos", "Пётр и волк", "DJ Seed", "Ōkami Band")
TITLES = ("Test Tone", "Café Ambient", "Ноктюрн", "Range Request", "Blue Hour (live)")
STICKER_EMOJI = ("👍", "😂", "🎉", "🐱", "❤️")
IMAGE_SIZES = ((800, 600), (1024, 768), (640, 1136))
POOL_BASE = 4_000_000_000_000_000
POOL_SIZE = 6
TWINS = 3
POOL_DATE = datetime(2023, 12, 2, tzinfo=UTC)


class MediaStore:
    """Media objects and files of one account, all derived from ``seed``."""

    def __init__(self, seed: int, dcs: int) -> None:
        self.seed = seed
        self.dcs = dcs
        self.files: dict[str, SimFile] = {}
        self.media: dict[tuple[str, int], types.Photo | types.Document] = {}
        self._ref_generation: dict[tuple[str, int], int] = {}
        self.pool = [self.pool_media(k) for k in range(POOL_SIZE)]

    def file_reference(self, kind: str, media_id: int) -> bytes:
        generation = self._ref_generation.get((kind, media_id), 0)
        digest = hashlib.blake2b(f"{self.seed}|{kind}|{media_id}|{generation}".encode(), digest_size=16)
        return b"\x02" + digest.digest()

    def rotate_file_reference(self, kind: str, media_id: int) -> None:
        """Give the media a new file reference; the old one is refused from now on."""
        key = (kind, media_id)
        self._ref_generation[key] = self._ref_generation.get(key, 0) + 1
        self.media[key].file_reference = self.file_reference(kind, media_id)

    def _register(
        self, key: str, size: int, dc_id: int, mime: str, content_id: str | None = None, sample: Sample | None = None
    ) -> None:
        self.files[key] = SimFile(key, size, dc_id, content_id or key, mime, sample)

    def _fit(
        self, content_id: str, sample: Sample, size: int | None, *, exact: bool = False
    ) -> tuple[int, Sample | None]:
        """``(size, sample)`` of a valid file of ``size`` bytes, or of its natural size when it cannot have
        that many (padded formats grow, others keep their template's size); with ``exact``, a size no
        valid file can have gives ``(size, None)``: synthetic bytes of exactly that size."""
        natural = samples.natural_size(self.seed, content_id, sample)
        if size is None or size == natural:
            return natural, sample
        if sample.format in samples.PADDED and size > natural:
            return size, sample
        return (size, None) if exact else (natural, sample)

    def _jpeg(self, key: str, dc_id: int, width: int, height: int, size: int) -> int:
        """Register a JPEG of at least ``size`` bytes; returns its size."""
        size, sample = self._fit(key, samples.jpeg(width, height), size)
        self._register(key, size, dc_id, "image/jpeg", sample=sample)
        return size

    def photo(self, media_id: int, rng: random.Random, date: datetime) -> types.Photo:
        dc_id = rng.randint(1, self.dcs)
        width, height = rng.choice(((1280, 960), (960, 1280), (1280, 720), (1080, 1080)))
        total = rng.randint(20_000, 200_000)
        small = rng.randint(3_000, min(12_000, total - 2))
        medium = rng.randint(small + 1, max(small + 1, total // 2))
        scale = 320 / max(width, height)
        m_size = (int(width * scale), int(height * scale))
        x_size = (int(width * scale * 2.5), int(height * scale * 2.5))
        small = self._jpeg(photo_key(media_id, "m"), dc_id, *m_size, small)
        medium = self._jpeg(photo_key(media_id, "x"), dc_id, *x_size, medium)
        total = self._jpeg(photo_key(media_id, "y"), dc_id, width, height, total)
        progressive = sorted({max(1, total // 8), max(2, total // 3), total})
        sizes: list[types.TypePhotoSize] = [
            types.PhotoStrippedSize(type="i", bytes=b"\x01\x28\x1e" + rng.randbytes(24)),
            types.PhotoSize(type="m", w=m_size[0], h=m_size[1], size=small),
            types.PhotoSize(type="x", w=x_size[0], h=x_size[1], size=medium),
            types.PhotoSizeProgressive(type="y", w=width, h=height, sizes=progressive),
        ]
        photo = types.Photo(
            id=media_id,
            access_hash=signed64(rng_for(self.seed, "hash", media_id)),
            file_reference=self.file_reference("photo", media_id),
            date=date,
            sizes=sizes,
            dc_id=dc_id,
        )
        self.media[("photo", media_id)] = photo
        return photo

    def document(
        self,
        media_id: int,
        kind: str,
        rng: random.Random,
        date: datetime,
        *,
        size: int | None = None,
        content_id: str | None = None,
        file_name: str | None = None,
    ) -> types.Document:
        dc_id = rng.randint(1, self.dcs)
        pick = rng_for(self.seed, "sample", media_id)  # a generator of its own: ``rng`` draws as it always did
        key = document_key(media_id)
        sample: Sample | None = None
        thumbs: list[types.TypePhotoSize] | None = None
        attributes: list[types.TypeDocumentAttribute]
        stamp = date.strftime("%Y%m%d_%H%M%S")
        if kind == "document" and content_id is None and file_name is None and size is None and pick.random() < 0.5:
            kind = pick.choice(DOCUMENT_KINDS)
        if kind in ("video", "round", "animation"):
            mime = "video/mp4"
            if kind == "video":
                wanted = size or rng.randint(1_000_000, 5_000_000)
                rng.uniform(3, 90)  # the duration drawn before files were valid; the template's is used
                template = samples.TEMPLATES[pick.choice(samples.VIDEO_TEMPLATES)]
                extra: list[types.TypeDocumentAttribute] = [
                    types.DocumentAttributeFilename(file_name=file_name or f"VID_{stamp}.mp4")
                ]
                flags = {"supports_streaming": True}
            elif kind == "round":
                wanted = size or rng.randint(300_000, 1_500_000)
                rng.randint(2, 59)
                template = samples.TEMPLATES[pick.choice(samples.ROUND_TEMPLATES)]
                extra, flags = [], {"round_message": True}
            else:
                wanted = size
                template = samples.TEMPLATES[pick.choice(samples.ANIMATION_TEMPLATES)]
                extra = [types.DocumentAttributeAnimated(),
                         types.DocumentAttributeFilename(file_name=file_name or f"animation-{media_id % 1000}.mp4")]
                flags = {}
            size, sample = self._fit(key, samples.from_template(template.name), wanted, exact=size is not None)
            attributes = [
                types.DocumentAttributeVideo(duration=template.duration, w=template.width, h=template.height, **flags),
                *extra,
            ]
            thumb_w, thumb_h = (320, 320 * template.height // template.width) if template.width >= template.height \
                else (320 * template.width // template.height, 320)
            thumb_size = self._jpeg(document_key(media_id, "m"), dc_id, thumb_w, thumb_h, rng.randint(2_000, 9_000))
            thumbs = [
                types.PhotoStrippedSize(type="i", bytes=b"\x01\x28\x28" + rng.randbytes(16)),
                types.PhotoSize(type="m", w=thumb_w, h=thumb_h, size=thumb_size),
            ]
        elif kind in ("voice", "audio"):
            if kind == "voice":
                mime = "audio/ogg"
                if size is None:
                    rng.randint(10_000, 60_000)  # the size drawn before files were valid; the template's is used
                rng.randint(1, 120)
                template = samples.TEMPLATES[pick.choice(samples.VOICE_TEMPLATES)]
                size, sample = self._fit(key, samples.from_template(template.name), size, exact=True)
                attributes = [types.DocumentAttributeAudio(
                    duration=round(template.duration), voice=True, waveform=rng.randbytes(63)
                )]
            else:
                mime = "audio/mpeg"
                performer, title = pick.choice(PERFORMERS), pick.choice(TITLES)
                template = samples.TEMPLATES[pick.choice(samples.AUDIO_TEMPLATES)]
                audio = samples.from_template(template.name, performer=performer, title=title)
                size, sample = self._fit(key, audio, size, exact=True)
                attributes = [
                    types.DocumentAttributeAudio(duration=round(template.duration), title=title, performer=performer),
                    types.DocumentAttributeFilename(file_name=file_name or f"{performer} - {title}.mp3"),
                ]
        elif kind == "sticker":
            mime = "image/webp"
            template = samples.TEMPLATES[pick.choice(samples.STICKER_TEMPLATES)]
            size, sample = self._fit(key, samples.from_template(template.name), size, exact=True)
            attributes = [
                types.DocumentAttributeImageSize(w=template.width, h=template.height),
                types.DocumentAttributeSticker(alt=pick.choice(STICKER_EMOJI), stickerset=types.InputStickerSetEmpty()),
                types.DocumentAttributeFilename(file_name="sticker.webp"),
            ]
        elif kind == "image":
            mime = "image/png"
            width, height = pick.choice(IMAGE_SIZES)
            size, sample = self._fit(key, samples.png(width, height), size, exact=True)
            attributes = [
                types.DocumentAttributeImageSize(w=width, h=height),
                types.DocumentAttributeFilename(file_name=file_name or f"screenshot-{media_id % 1000}.png"),
            ]
        else:
            if content_id is not None or rng.random() < 0.5:
                mime, name = "application/pdf", file_name or f"report-{media_id % 100_000}.pdf"
            else:
                mime, name = "application/zip", file_name or f"archive {media_id % 1000}.zip"
            size = size or rng.randint(5_000, 500_000)
            attributes = [types.DocumentAttributeFilename(file_name=name)]
        self._register(key, size, dc_id, mime, content_id, sample)
        document = types.Document(
            id=media_id,
            access_hash=signed64(rng_for(self.seed, "hash", media_id)),
            file_reference=self.file_reference("document", media_id),
            date=date,
            mime_type=mime,
            size=size,
            dc_id=dc_id,
            attributes=attributes,
            thumbs=thumbs,
        )
        self.media[("document", media_id)] = document
        return document

    def pool_media(self, k: int) -> types.Photo | types.Document:
        """Media re-posted across chats: the very same Telegram id in several messages."""
        rng = rng_for(self.seed, "pool", k)
        date = POOL_DATE + timedelta(days=k)
        if k % 2 == 0:
            return self.photo(POOL_BASE + k, rng, date)
        return self.document(POOL_BASE + k, "document", rng, date, file_name=f"shared-{k}.pdf")

    def twin_document(self, media_id: int, rng: random.Random, date: datetime) -> types.Document:
        """A document with its own id whose bytes equal those of other twins (same content id)."""
        twin = rng.randrange(TWINS)
        twin_rng = rng_for(self.seed, "twin", twin)
        size = twin_rng.randint(5_000, 500_000)
        return self.document(
            media_id, "document", rng, date, size=size, content_id=f"twin:{twin}",
            file_name=f"copy {media_id % 1000} of twin {twin}.pdf",
        )

    def make_media(
        self, kind: str, media_id: int, rng: random.Random, date: datetime, *, size: int | None = None
    ) -> types.TypeMessageMedia:
        if kind == "photo":
            return types.MessageMediaPhoto(photo=self.photo(media_id, rng, date))
        if kind not in MEDIA_KINDS + DOCUMENT_KINDS:
            raise ValueError(f"unknown media kind {kind!r} (one of {', '.join(MEDIA_KINDS + DOCUMENT_KINDS)})")
        document = self.document(media_id, kind, rng, date, size=size)
        return types.MessageMediaDocument(
            document=document, video=kind == "video" or None, round=kind == "round" or None,
            voice=kind == "voice" or None,
        )

    @staticmethod
    def wrap(media: types.Photo | types.Document) -> types.TypeMessageMedia:
        if isinstance(media, types.Photo):
            return types.MessageMediaPhoto(photo=media)
        return types.MessageMediaDocument(document=media)
