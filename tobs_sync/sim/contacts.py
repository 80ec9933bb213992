"""The simulated account's contact list: ``contacts.getContacts`` and ``contacts.resolvePhone``.

Every generated user the account knows (not itself) is a mutual contact. Telegram shows a contact's
phone number in the contact list, so users there carry a phone derived from the seed and their id
(:func:`contact_phone`); elsewhere (history, dialogs) the simulator sends users without phones, as
Telegram does for people whose privacy settings hide it. Telethon sends ``contacts.getContacts`` when
``get_entity`` is given a digit string (it takes it for a phone number).

Limits: the ``hash`` argument is ignored (the full list is always sent, never
``contacts.contactsNotModified``); no importing, adding or deleting contacts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from telethon.extensions import BinaryReader
from telethon.tl import functions, types
from telethon.tl.tlobject import TLObject

from tobs_sync.sim.account import Account
from tobs_sync.sim.content import rng_for
from tobs_sync.sim.rpc import bad_request


def contact_phone(seed: int, user_id: int) -> str:
    """The phone number (digits only, as Telegram sends it) of contact ``user_id``."""
    return f"4470{rng_for(seed, 'phone', user_id).randrange(10**7):07d}"


class ContactBook:
    """Answers the contact requests from the account's users."""

    def __init__(self, account: Account, seed: int) -> None:
        self._account = account
        self._seed = seed

    def handlers(self) -> dict[type, Callable[[Any, Any], TLObject]]:
        return {
            functions.contacts.GetContactsRequest: self._get_contacts,
            functions.contacts.ResolvePhoneRequest: self._resolve_phone,
        }

    def users(self) -> list[types.User]:
        """The contacts as ``contacts.getContacts`` lists them (with phone numbers), sorted by id."""
        found = []
        for user_id in sorted(self._account.users):
            user = self._account.users[user_id]
            if user.is_self or not user.contact:
                continue
            listed = BinaryReader(bytes(user)).tgread_object()  # a copy: the account's user stays phoneless
            listed.phone = contact_phone(self._seed, user.id)
            found.append(listed)
        return found

    def _get_contacts(self, req: functions.contacts.GetContactsRequest, ctx: Any) -> TLObject:
        users = self.users()
        return types.contacts.Contacts(
            contacts=[types.Contact(user_id=u.id, mutual=bool(u.mutual_contact)) for u in users],
            saved_count=0, users=users,
        )

    def _resolve_phone(self, req: functions.contacts.ResolvePhoneRequest, ctx: Any) -> TLObject:
        wanted = "".join(ch for ch in req.phone if ch.isdigit())
        if not wanted:
            raise bad_request("PHONE_NUMBER_INVALID")
        for user in self.users():
            if user.phone == wanted:
                return types.contacts.ResolvedPeer(peer=types.PeerUser(user.id), chats=[], users=[user])
        raise bad_request("PHONE_NOT_OCCUPIED")
