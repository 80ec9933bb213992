"""The simulated Telegram server: answers TL requests from the in-memory :class:`Account`.

:meth:`SimServer.handle` receives the request exactly as Telegram would (already serialised by the
client and parsed back, wrappers removed by :func:`unwrap`) and returns the TL result object, or raises
:class:`RpcFault` with Telegram's error. Semantics follow Telegram's documentation where Telethon
depends on them:

* ``messages.getHistory``: ``offset_id`` (else ``offset_date``) picks the position in the newest-first
  history, ``add_offset`` shifts it (negative = newer), ``limit`` (max 100) cuts it, ``min_id``/``max_id``
  are exclusive bounds. Channels answer ``messages.channelMessages`` (with ``pts``), other chats
  ``messages.messagesSlice``, or ``messages.messages`` when the whole history fits in the answer.
* ``messages.getDialogs`` pages by ``offset_peer`` (else ``offset_date``) over dialogs ordered by their
  newest message; ``messages.dialogsSlice`` while more remain, ``messages.dialogs`` for the last page.
* ``upload.getFile`` enforces ``offset % 4096 == 0``, ``limit % 4096 == 0``, ``1 MiB % limit == 0`` and
  no crossing of a 1 MiB boundary (``precise``: multiples of 1024, at most 1 MiB), answers
  ``FILE_MIGRATE_X`` on the wrong DC and ``FILE_REFERENCE_EXPIRED`` for a stale ``file_reference``.
* Takeout: ``account.initTakeoutSession`` opens a session, ``invokeWithTakeout`` must name an open one.
* ``updates.getState``/``getDifference``/``getChannelDifference`` are answered by :mod:`difference`
  (slices, ``TooLong``, messages as they are now); pushes go out in the shapes of :mod:`shapes`.

* Login (:mod:`login`): the code, 2FA with SRP, ``PHONE_MIGRATE_X`` off the account's home DC;
  contacts (:mod:`contacts`); every request's constructors are checked against the TL schema
  (:mod:`schema`: ``INPUT_CONSTRUCTOR_INVALID``); the spec's ``rate`` policy (:mod:`ratelimit`) is
  applied by the connection before a request reaches :meth:`SimServer.handle`.

Limits: peers must carry their real ``access_hash`` (Telegram also refuses 0 for user accounts), so a
fresh client must list dialogs (or use stored input peers) before addressing chats by id; there is no
search, no sending and no reactions; floods come from the ``rate`` policy or :class:`Faults`.
Requests without a handler raise :class:`UnsupportedRequest` naming the request.
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from telethon.extensions import BinaryReader
from telethon.tl import functions, types
from telethon.tl.tlobject import TLObject

from tobs_sync.sim.account import Account, SimChat
from tobs_sync.sim.chat_info import chat_info_handlers
from tobs_sync.sim.contacts import ContactBook
from tobs_sync.sim.content import rng_for, signed64
from tobs_sync.sim.difference import UpdateFeed
from tobs_sync.sim.discussion import discussion_handlers, history_window
from tobs_sync.sim.faults import Faults
from tobs_sync.sim.files import key_of_location, media_id_of_key, read_range
from tobs_sync.sim.login import REQUESTS_BEFORE_LOGIN, LoginDesk
from tobs_sync.sim.ratelimit import policy_for
from tobs_sync.sim.rpc import RpcFault, UnsupportedRequest, bad_request
from tobs_sync.sim.schema import check_constructors
from tobs_sync.sim.spec import SimSpec
from tobs_sync.sim.stats import SimStats

CDN_DC = 203
"""The CDN data centre a ``fileCdnRedirect`` names (Telegram's CDN DCs have ids above 200)."""
MAX_HISTORY = 100
MAX_DIALOGS = 100
MIB = 1024 * 1024
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_WRAPPERS = (
    functions.InvokeWithLayerRequest,
    functions.InitConnectionRequest,
    functions.InvokeWithoutUpdatesRequest,
)


@dataclass(frozen=True, slots=True)
class CallContext:
    """Where a request arrived: the connection's DC and the takeout session it was wrapped in."""

    dc: int
    takeout_id: int | None = None


class UpdateSubscriber(Protocol):
    """A home connection that can receive pushed updates (the simulated sender)."""

    def push_update(self, updates: TLObject) -> None: ...


def unwrap(request: TLObject) -> tuple[TLObject, int | None]:
    """The innermost query and the takeout id it was wrapped with (if any)."""
    takeout_id = None
    while True:
        if isinstance(request, _WRAPPERS):
            request = request.query
        elif isinstance(request, functions.InvokeWithTakeoutRequest):
            takeout_id = request.takeout_id
            request = request.query
        else:
            return request, takeout_id


def _media_id(message: TLObject) -> tuple[str, int] | None:
    media = getattr(message, "media", None)
    if isinstance(media, types.MessageMediaPhoto) and isinstance(media.photo, types.Photo):
        return "photo", media.photo.id
    if isinstance(media, types.MessageMediaDocument) and isinstance(media.document, types.Document):
        return "document", media.document.id
    return None


def copy_tl(obj: TLObject) -> TLObject:
    """An independent copy made by serialising, as if it had crossed the network."""
    return BinaryReader(bytes(obj)).tgread_object()


class SimServer:
    """Request handlers over one :class:`Account`, shared by every connection of the simulator."""

    def __init__(self, spec: SimSpec, account: Account, faults: Faults, stats: SimStats) -> None:
        self.spec = spec
        self.account = account
        self.faults = faults
        self.stats = stats
        self._takeouts: set[int] = set()
        self._takeout_counter = 0
        self._exports: dict[int, tuple[int, bytes]] = {}
        self._subscribers: weakref.WeakSet[Any] = weakref.WeakSet()
        self.login = LoginDesk(spec.home_dc, account.self_user, spec.seed)
        self.contacts = ContactBook(account, spec.seed)
        self.rate = policy_for(spec.rate)
        self.updates = UpdateFeed(account, self._deliver)
        self._handlers: dict[type, Callable[[Any, CallContext], Any]] = {
            functions.messages.GetHistoryRequest: self._get_history,
            functions.messages.GetMessagesRequest: self._get_messages,
            functions.channels.GetMessagesRequest: self._get_channel_messages,
            functions.messages.GetDialogsRequest: self._get_dialogs,
            functions.contacts.ResolveUsernameRequest: self._resolve_username,
            functions.users.GetUsersRequest: self._get_users,
            functions.channels.GetChannelsRequest: self._get_channels,
            functions.messages.GetChatsRequest: self._get_chats,
            functions.updates.GetStateRequest: self._get_state,
            functions.updates.GetDifferenceRequest: self._get_difference,
            functions.updates.GetChannelDifferenceRequest: self._get_channel_difference,
            functions.help.GetConfigRequest: self._get_config,
            functions.auth.ExportAuthorizationRequest: self._export_authorization,
            functions.auth.ImportAuthorizationRequest: self._import_authorization,
            functions.account.InitTakeoutSessionRequest: self._init_takeout,
            functions.account.FinishTakeoutSessionRequest: self._finish_takeout,
            functions.upload.GetFileRequest: self._get_file,
            functions.PingRequest: self._ping,
            **self.login.handlers(),
            **self.contacts.handlers(),
            **chat_info_handlers(account),
            **discussion_handlers(account, faults.is_private),
        }

    @property
    def logged_in(self) -> bool:
        """False simulates a new session: everything but the login requests answers AUTH_KEY_UNREGISTERED."""
        return self.login.logged_in

    @logged_in.setter
    def logged_in(self, value: bool) -> None:
        self.login.logged_in = value

    @property
    def login_code(self) -> str:
        return self.login.code

    def handle(self, request: TLObject, ctx: CallContext) -> Any:
        """The result of an unwrapped request (TL object, list or bool), or raise :class:`RpcFault`."""
        if ctx.takeout_id is not None and ctx.takeout_id not in self._takeouts:
            raise bad_request("TAKEOUT_INVALID")
        handler = self._handlers.get(type(request))
        if not self.logged_in and type(request) not in REQUESTS_BEFORE_LOGIN:
            raise RpcFault(401, "AUTH_KEY_UNREGISTERED")
        if handler is None:
            raise UnsupportedRequest(
                f"tobs_sync.sim has no handler for {type(request).__name__} "
                f"({type(request).__module__}); add one to tobs_sync/sim/server.py"
            )
        check_constructors(request)
        return handler(request, ctx)

    # region updates pushed to clients

    def subscribe(self, subscriber: UpdateSubscriber) -> None:
        self._subscribers.add(subscriber)

    def broadcast(self, update: TLObject, messages: list[TLObject], shape: str | None = None) -> None:
        """Push ``update`` to connected clients in ``shape`` (else the feed's policy; see :mod:`shapes`)."""
        self.updates.push([update], messages, shape)

    def _deliver(self, updates: TLObject) -> None:
        for subscriber in list(self._subscribers):
            subscriber.push_update(copy_tl(updates))

    def log_new_message(self, chat: SimChat, message: TLObject) -> TLObject:
        return self.updates.record_new(chat, message)

    def log_edit(self, chat: SimChat, message: TLObject) -> TLObject:
        return self.updates.record_edit(chat, message)

    def log_delete(self, chat: SimChat, ids: list[int]) -> TLObject:
        return self.updates.record_delete(chat, ids)

    # endregion

    # region helpers

    def _check_private(self, chat: SimChat | None) -> None:
        if chat is not None and self.faults.is_private(chat.marked_id):
            raise bad_request("CHANNEL_PRIVATE")

    def _as_seen(self, entity: TLObject) -> TLObject:
        """``entity`` as the user sees it: a channel that turned private is a ``channelForbidden``."""
        if not isinstance(entity, types.Channel):
            return entity
        chat = self.account.channels.get(entity.id)
        if chat is None or not self.faults.is_private(chat.marked_id):
            return entity
        return types.ChannelForbidden(
            id=chat.raw_id, access_hash=chat.access_hash, title=chat.title,
            broadcast=chat.kind == "channel" or None, megagroup=chat.kind == "megagroup" or None,
        )

    def _dialog_order(self) -> list[SimChat]:
        def key(chat: SimChat) -> tuple[datetime, int]:
            top = chat.messages[-1] if chat.messages else None
            return (top.date if top is not None else chat.created), -chat.index

        return sorted(self.account.chats, key=key, reverse=True)

    def dialog_order(self) -> list[SimChat]:
        """Chats in the order ``messages.getDialogs`` lists them (newest activity first)."""
        return self._dialog_order()

    # endregion

    # region messages

    def _get_history(self, req: functions.messages.GetHistoryRequest, ctx: CallContext) -> TLObject:
        chat = self.account.chat_for_peer(req.peer)
        self._check_private(chat)
        if chat is None:
            users, chats = self.account.entities_for([])
            return types.messages.Messages(messages=[], topics=[], chats=chats, users=users)
        history = chat.messages
        total = len(history)
        offset_date = req.offset_date if req.offset_date and req.offset_date > EPOCH else None
        window = history_window(history, req, maximum=MAX_HISTORY, offset_date=offset_date)
        users, chats = self.account.entities_for(window, [chat.peer])
        if chat.is_channel:
            return types.messages.ChannelMessages(
                pts=chat.log.pts, count=total, messages=window, topics=[], chats=chats, users=users
            )
        if len(window) == total:
            return types.messages.Messages(messages=window, topics=[], chats=chats, users=users)
        return types.messages.MessagesSlice(count=total, messages=window, topics=[], chats=chats, users=users)

    def _get_messages(self, req: functions.messages.GetMessagesRequest, ctx: CallContext) -> TLObject:
        found: list[TLObject] = []
        for item in req.id:
            hit = self.account.non_channel_message(item.id) if isinstance(item, types.InputMessageID) else None
            found.append(hit[1] if hit is not None else types.MessageEmpty(id=getattr(item, "id", 0), peer_id=None))
        users, chats = self.account.entities_for(m for m in found if not isinstance(m, types.MessageEmpty))
        return types.messages.Messages(messages=found, topics=[], chats=chats, users=users)

    def _get_channel_messages(self, req: functions.channels.GetMessagesRequest, ctx: CallContext) -> TLObject:
        chat = self.account.chat_for_peer(req.channel)
        self._check_private(chat)
        if chat is None:
            raise bad_request("CHANNEL_INVALID")
        if not req.id:
            raise bad_request("MESSAGE_IDS_EMPTY")
        found: list[TLObject] = []
        for item in req.id:
            hit = chat.by_id.get(item.id) if isinstance(item, types.InputMessageID) else None
            found.append(hit if hit is not None else types.MessageEmpty(id=getattr(item, "id", 0), peer_id=chat.peer))
        real = [m for m in found if not isinstance(m, types.MessageEmpty)]
        users, chats = self.account.entities_for(real, [chat.peer])
        return types.messages.ChannelMessages(
            pts=chat.log.pts, count=len(real), messages=found, topics=[], chats=chats, users=users
        )

    def _get_dialogs(self, req: functions.messages.GetDialogsRequest, ctx: CallContext) -> TLObject:
        order = [] if req.folder_id else self._dialog_order()
        start = 0
        if not isinstance(req.offset_peer, (types.InputPeerEmpty, type(None))):
            try:
                anchor = self.account.chat_for_peer(req.offset_peer)
            except RpcFault:
                anchor = None
            if anchor in order:
                start = order.index(anchor) + 1  # type: ignore[arg-type]
        elif req.offset_date and req.offset_date > EPOCH:
            start = next(
                (i for i, chat in enumerate(order) if chat.messages and chat.messages[-1].date < req.offset_date),
                len(order),
            )
        page = order[start : start + max(0, min(req.limit, MAX_DIALOGS))]
        dialogs, tops = [], []
        for chat in page:
            top = chat.messages[-1] if chat.messages and not self.faults.is_private(chat.marked_id) else None
            if top is not None:
                tops.append(top)
            top_id = top.id if top is not None else 0
            dialogs.append(
                types.Dialog(
                    peer=chat.peer, top_message=top_id, read_inbox_max_id=top_id, read_outbox_max_id=top_id,
                    unread_count=0, unread_mentions_count=0, unread_reactions_count=0, unread_poll_votes_count=0,
                    notify_settings=types.PeerNotifySettings(), pts=chat.log.pts if chat.is_channel else None,
                )
            )
        users, chats = self.account.entities_for(tops, [chat.peer for chat in page])
        chats = [self._as_seen(chat) for chat in chats]
        if start + len(page) < len(order):
            return types.messages.DialogsSlice(
                count=len(order), dialogs=dialogs, messages=tops, chats=chats, users=users
            )
        return types.messages.Dialogs(dialogs=dialogs, messages=tops, chats=chats, users=users)

    # endregion

    # region entities

    def _resolve_username(self, req: functions.contacts.ResolveUsernameRequest, ctx: CallContext) -> TLObject:
        wanted = req.username.lower().lstrip("@")
        peer: types.TypePeer | None = None
        for chat in self.account.chats:
            if chat.username and chat.username.lower() == wanted:
                peer = chat.peer
        for user in self.account.users.values():
            if user.username and user.username.lower() == wanted:
                peer = types.PeerUser(user.id)
        if wanted == (self.account.external.username or "").lower():
            peer = types.PeerChannel(self.account.external.id)
        if peer is None:
            raise bad_request("USERNAME_NOT_OCCUPIED")
        users, chats = self.account.entities_for([], [peer])
        return types.contacts.ResolvedPeer(peer=peer, chats=chats, users=users)

    def _get_users(self, req: functions.users.GetUsersRequest, ctx: CallContext) -> list[TLObject]:
        result: list[TLObject] = []
        for item in req.id:
            if isinstance(item, types.InputUserSelf):
                result.append(self.account.self_user)
                continue
            user = self.account.users.get(getattr(item, "user_id", 0))
            if isinstance(item, types.InputUser) and user is not None and user.access_hash == item.access_hash:
                result.append(user)
            else:
                result.append(types.UserEmpty(id=getattr(item, "user_id", 0)))
        return result

    def _get_channels(self, req: functions.channels.GetChannelsRequest, ctx: CallContext) -> TLObject:
        result: list[TLObject] = []
        external = self.account.external
        for item in req.id:
            if not isinstance(item, types.InputChannel):  # the schema's type: InputPeerChannel is refused
                raise bad_request("INPUT_CONSTRUCTOR_INVALID")
            if item.channel_id == external.id:
                if item.access_hash != external.access_hash:
                    raise bad_request("CHANNEL_INVALID")
                result.append(external)
                continue
            chat = self.account.chat_for_peer(item)
            if chat is None:
                raise bad_request("CHANNEL_INVALID")
            result.append(self._as_seen(self.account.chat_entity(chat)))
        return types.messages.Chats(chats=result)

    def _get_chats(self, req: functions.messages.GetChatsRequest, ctx: CallContext) -> TLObject:
        result: list[TLObject] = []
        for chat_id in req.id:
            chat = self.account.groups.get(chat_id)
            if chat is None:
                raise bad_request("CHAT_ID_INVALID")
            result.append(self.account.chat_entity(chat))
        return types.messages.Chats(chats=result)

    # endregion

    # region updates

    def _get_state(self, req: functions.updates.GetStateRequest, ctx: CallContext) -> TLObject:
        return self.updates.state()

    def _get_difference(self, req: functions.updates.GetDifferenceRequest, ctx: CallContext) -> TLObject:
        return self.updates.difference(req)

    def _get_channel_difference(
        self, req: functions.updates.GetChannelDifferenceRequest, ctx: CallContext
    ) -> TLObject:
        chat = self.account.chat_for_peer(req.channel)
        self._check_private(chat)
        if chat is None:
            raise bad_request("CHANNEL_INVALID")
        return self.updates.channel_difference(chat, req)

    # endregion

    # region connection and authorisation

    def _get_config(self, req: functions.help.GetConfigRequest, ctx: CallContext) -> TLObject:
        now = self.account.now()
        return types.Config(
            date=now, expires=now + timedelta(hours=1), test_mode=False, this_dc=ctx.dc,
            dc_options=[
                types.DcOption(id=dc, ip_address=f"127.0.0.{dc}", port=443) for dc in range(1, self.spec.dcs + 1)
            ],
            dc_txt_domain_name="sim.invalid", chat_size_max=200, megagroup_size_max=200_000,
            forwarded_count_max=100, online_update_period_ms=210_000, offline_blur_timeout_ms=5_000,
            offline_idle_timeout_ms=30_000, online_cloud_timeout_ms=300_000, notify_cloud_delay_ms=30_000,
            notify_default_delay_ms=1_500, push_chat_period_ms=60_000, push_chat_limit=2,
            edit_time_limit=172_800, revoke_time_limit=2_147_483_647, revoke_pm_time_limit=2_147_483_647,
            rating_e_decay=2_419_200, stickers_recent_limit=200, channels_read_media_period=604_800,
            call_receive_timeout_ms=20_000, call_ring_timeout_ms=90_000, call_connect_timeout_ms=30_000,
            call_packet_timeout_ms=10_000, me_url_prefix="https://t.me/", caption_length_max=1024,
            message_length_max=4096, webfile_dc_id=min(4, self.spec.dcs),
        )

    def _export_authorization(self, req: functions.auth.ExportAuthorizationRequest, ctx: CallContext) -> TLObject:
        if req.dc_id == ctx.dc or not 1 <= req.dc_id <= self.spec.dcs:
            raise bad_request("DC_ID_INVALID")
        export_id = len(self._exports) + 1
        token = hashlib.blake2b(f"{self.spec.seed}|export|{export_id}".encode(), digest_size=32).digest()
        self._exports[export_id] = (req.dc_id, token)
        return types.auth.ExportedAuthorization(id=export_id, bytes=token)

    def _import_authorization(self, req: functions.auth.ImportAuthorizationRequest, ctx: CallContext) -> TLObject:
        if self._exports.get(req.id) != (ctx.dc, req.bytes):
            raise bad_request("AUTH_BYTES_INVALID")
        return types.auth.Authorization(user=self.account.self_user)

    def _init_takeout(self, req: functions.account.InitTakeoutSessionRequest, ctx: CallContext) -> TLObject:
        self._takeout_counter += 1
        takeout_id = abs(signed64(rng_for(self.spec.seed, "takeout", self._takeout_counter)))
        self._takeouts.add(takeout_id)
        return types.account.Takeout(id=takeout_id)

    @property
    def open_takeouts(self) -> int:
        return len(self._takeouts)

    def end_takeouts(self) -> None:
        """End every open takeout session (another export started): their ids are refused from now on."""
        self._takeouts.clear()

    def _finish_takeout(self, req: functions.account.FinishTakeoutSessionRequest, ctx: CallContext) -> bool:
        if ctx.takeout_id is None:
            raise bad_request("TAKEOUT_REQUIRED")
        self._takeouts.discard(ctx.takeout_id)
        return True

    def _ping(self, req: functions.PingRequest, ctx: CallContext) -> TLObject:
        return types.Pong(msg_id=0, ping_id=req.ping_id)

    # endregion

    # region files

    def _get_file(self, req: functions.upload.GetFileRequest, ctx: CallContext) -> TLObject:
        key = key_of_location(req.location)
        if key is None:
            raise bad_request("LOCATION_INVALID")
        kind_id = media_id_of_key(key)
        media = self.account.media.get(kind_id)
        file = self.account.files.get(key)
        if media is None or file is None:
            raise bad_request("LOCATION_INVALID")
        if req.location.access_hash != media.access_hash:
            raise bad_request("FILE_ID_INVALID")
        if file.dc_id != ctx.dc:
            raise RpcFault(303, f"FILE_MIGRATE_{file.dc_id}")
        self._check_file_range(req)
        if req.location.file_reference != media.file_reference:
            raise bad_request("FILE_REFERENCE_EXPIRED")
        if (rule := self.faults.take_file_fault(key)) is not None:
            if rule.kind == "cdn":
                return self._cdn_redirect(key)
            if rule.kind == "replace":
                self._replace_media(kind_id)
            self.account.rotate_file_reference(*kind_id)
            raise bad_request(rule.message)
        data = read_range(self.spec.seed, file, req.offset, req.limit)
        self.stats.file_requests[key] += 1
        if req.offset == 0:
            self.stats.file_downloads[key] += 1
        self.stats.file_bytes[key] += len(data)
        self.stats.bytes_by_dc[ctx.dc] += len(data)
        file_type = types.storage.FileJpeg() if file.mime_type == "image/jpeg" else types.storage.FilePartial()
        return types.upload.File(type=file_type, mtime=0, bytes=data)

    def _cdn_redirect(self, key: str) -> TLObject:
        """``upload.fileCdnRedirect`` for ``key``: where a CDN would serve it (a DC id the client has
        no options for), with a token, an AES-256-CTR key and IV derived from the seed."""
        digest = hashlib.blake2b(f"{self.spec.seed}|cdn|{key}".encode(), digest_size=64).digest()
        self.stats.errors[("GetFile", "fileCdnRedirect")] += 1
        return types.upload.FileCdnRedirect(
            dc_id=CDN_DC, file_token=digest[:16], encryption_key=digest[16:48], encryption_iv=digest[48:64],
            file_hashes=[],
        )

    def _replace_media(self, kind_id: tuple[str, int]) -> None:
        """Give every message carrying ``kind_id`` another file (an edit of its media), announced as an edit."""
        for chat in self.account.chats:
            for message in chat.messages:
                if _media_id(message) == kind_id:
                    self.account.replace_media(message)
                    self.broadcast(self.log_edit(chat, message), [message])

    @staticmethod
    def _check_file_range(req: functions.upload.GetFileRequest) -> None:
        offset, limit = req.offset, req.limit
        if req.precise:
            if offset < 0 or offset % 1024:
                raise bad_request("OFFSET_INVALID")
            if limit <= 0 or limit % 1024 or limit > MIB:
                raise bad_request("LIMIT_INVALID")
            return
        if offset < 0 or offset % 4096:
            raise bad_request("OFFSET_INVALID")
        if limit <= 0 or limit % 4096 or MIB % limit:
            raise bad_request("LIMIT_INVALID")
        if offset // MIB != (offset + limit - 1) // MIB:
            raise bad_request("LIMIT_INVALID")

    # endregion

