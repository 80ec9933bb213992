"""Media of the simulated account: ``Photo``/``Document`` objects and the files behind them.

:class:`MediaStore` builds the TL media objects Telegram would send (photos with stripped, ``m``, ``x``
and progressive ``y`` sizes; videos and round videos with thumbnails; voice notes; PDF and ZIP
documents) and registers one :class:`~tobs_sync.sim.files.SimFile` per downloadable size. Sizes: photos
20-200 KB, videos 1-5 MB, round videos 0.3-1.5 MB, voice 10-60 KB, documents 5-500 KB; the DC of each
object is drawn from ``1..dcs``. It also owns file references: every media object carries the current
reference of its ``(kind, id)``, and :meth:`MediaStore.rotate_file_reference` replaces it (the old one is
refused from then on). A small pool of media is re-posted under the same id in several chats, and
"twin" documents have different ids but identical bytes (same content id).

Limits: no stickers, GIFs, audio files with performer/title, video covers or alternative qualities.
"""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime, timedelta

from telethon.tl import types

from tobs_sync.sim.content import rng_for, signed64
from tobs_sync.sim.files import SimFile, document_key, photo_key

MEDIA_KINDS = ("photo", "video", "round", "voice", "document")
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

    def _register(self, key: str, size: int, dc_id: int, mime: str, content_id: str | None = None) -> None:
        self.files[key] = SimFile(key, size, dc_id, content_id or key, mime)

    def photo(self, media_id: int, rng: random.Random, date: datetime) -> types.Photo:
        dc_id = rng.randint(1, self.dcs)
        width, height = rng.choice(((1280, 960), (960, 1280), (1280, 720), (1080, 1080)))
        total = rng.randint(20_000, 200_000)
        small = rng.randint(3_000, min(12_000, total - 2))
        medium = rng.randint(small + 1, max(small + 1, total // 2))
        progressive = sorted({max(1, total // 8), max(2, total // 3), total})
        scale = 320 / max(width, height)
        sizes: list[types.TypePhotoSize] = [
            types.PhotoStrippedSize(type="i", bytes=b"\x01\x28\x1e" + rng.randbytes(24)),
            types.PhotoSize(type="m", w=int(width * scale), h=int(height * scale), size=small),
            types.PhotoSize(type="x", w=int(width * scale * 2.5), h=int(height * scale * 2.5), size=medium),
            types.PhotoSizeProgressive(type="y", w=width, h=height, sizes=progressive),
        ]
        for size_type, size in (("m", small), ("x", medium), ("y", total)):
            self._register(photo_key(media_id, size_type), size, dc_id, "image/jpeg")
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
        thumbs: list[types.TypePhotoSize] | None = None
        attributes: list[types.TypeDocumentAttribute]
        stamp = date.strftime("%Y%m%d_%H%M%S")
        if kind in ("video", "round"):
            mime = "video/mp4"
            if kind == "video":
                size = size or rng.randint(1_000_000, 5_000_000)
                duration = round(rng.uniform(3, 90), 2)
                attributes = [
                    types.DocumentAttributeVideo(duration=duration, w=1280, h=720, supports_streaming=True),
                    types.DocumentAttributeFilename(file_name=file_name or f"VID_{stamp}.mp4"),
                ]
            else:
                size = size or rng.randint(300_000, 1_500_000)
                attributes = [
                    types.DocumentAttributeVideo(duration=rng.randint(2, 59), w=384, h=384, round_message=True)
                ]
            thumb_size = rng.randint(2_000, 9_000)
            thumbs = [
                types.PhotoStrippedSize(type="i", bytes=b"\x01\x28\x28" + rng.randbytes(16)),
                types.PhotoSize(type="m", w=320, h=180 if kind == "video" else 320, size=thumb_size),
            ]
            self._register(document_key(media_id, "m"), thumb_size, dc_id, "image/jpeg")
        elif kind == "voice":
            mime = "audio/ogg"
            size = size or rng.randint(10_000, 60_000)
            attributes = [
                types.DocumentAttributeAudio(duration=rng.randint(1, 120), voice=True, waveform=rng.randbytes(63))
            ]
        else:
            if content_id is not None or rng.random() < 0.5:
                mime, name = "application/pdf", file_name or f"report-{media_id % 100_000}.pdf"
            else:
                mime, name = "application/zip", file_name or f"archive {media_id % 1000}.zip"
            size = size or rng.randint(5_000, 500_000)
            attributes = [types.DocumentAttributeFilename(file_name=name)]
        self._register(document_key(media_id), size, dc_id, mime, content_id)
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
        if kind not in MEDIA_KINDS:
            raise ValueError(f"unknown media kind {kind!r} (one of {', '.join(MEDIA_KINDS)})")
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
