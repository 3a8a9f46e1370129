"""Runs the flows of Box's official Python SDK (boxsdk 3.14, its README and usage docs)
against `boxfs emulator`.

Each flow is reported on one line (`ok NAME` or `FAIL NAME` plus its traceback); the script
exits 1 if any flow failed. The emulator is given by environment variables:

    BOXEMU_BASE_URL, BOXEMU_CLIENT_ID, BOXEMU_CLIENT_SECRET, BOXEMU_ENTERPRISE_ID,
    BOXEMU_USER_ID, BOXEMU_DEVELOPER_TOKEN, BOXEMU_JWT_CONFIG (path of the JSON config the
    emulator wrote for `--jwt-config`)

(the first six are the fields of the JSON line `boxfs emulator` prints). Arguments, if any,
name the flows to run (by substring); the default is all of them, in order.
"""

import contextlib
import hashlib
import io
import itertools
import json
import logging
import os
import queue
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse

import requests

from boxsdk.config import API

BASE = os.environ["BOXEMU_BASE_URL"].rstrip("/")
# Every host of Box is served by the emulator on one port.
API.BASE_API_URL = f"{BASE}/2.0"
API.UPLOAD_URL = f"{BASE}/api/2.0"
API.OAUTH2_API_URL = f"{BASE}/oauth2"
API.OAUTH2_AUTHORIZE_URL = f"{BASE}/api/oauth2/authorize"
# Fail fast instead of backing off for minutes when something is wrong.
API.MAX_RETRY_ATTEMPTS = 2

from boxsdk import CCGAuth, Client, DeveloperTokenClient, JWTAuth, LoggingClient, OAuth2  # noqa: E402
from boxsdk.exception import BoxAPIException, BoxOAuthException  # noqa: E402
from boxsdk.object.metadata_template import MetadataField, MetadataFieldType  # noqa: E402
from boxsdk.object.search import MetadataSearchFilter, MetadataSearchFilters  # noqa: E402

CLIENT_ID = os.environ["BOXEMU_CLIENT_ID"]
CLIENT_SECRET = os.environ["BOXEMU_CLIENT_SECRET"]
ENTERPRISE_ID = os.environ["BOXEMU_ENTERPRISE_ID"]
ADMIN_ID = os.environ["BOXEMU_USER_ID"]
DEV_TOKEN = os.environ["BOXEMU_DEVELOPER_TOKEN"]
JWT_CONFIG = os.environ.get("BOXEMU_JWT_CONFIG", "")

REDIRECT_URI = "http://127.0.0.1:9/callback"
RUN_TAG = f"{int(time.time() * 1000) % 100000000:08d}"


def dev_client(cls=Client):
    """A client on the admin's developer token, as the README's "Getting Started" makes one."""
    return cls(OAuth2(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, access_token=DEV_TOKEN))


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def eq(got, want, what):
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")


def status_of(exc):
    return getattr(exc, "status", None)


class Ctx:
    """What flows hand to later flows."""

    def __init__(self):
        self.client = dev_client()
        self.work = None  # a folder of this run, under the root

    def work_folder(self):
        if self.work is None:
            self.work = self.client.folder("0").create_subfolder(f"boxsdk-flows-{RUN_TAG}")
        return self.work


FLOWS = []


def flow(name):
    def register(fn):
        FLOWS.append((name, fn))
        return fn

    return register


# --- Authorization ------------------------------------------------------------------------


@flow("oauth2_three_legged")
def oauth2_three_legged(ctx):
    stored = []

    def store_tokens(access_token, refresh_token):
        stored.append((access_token, refresh_token))

    oauth = OAuth2(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, store_tokens=store_tokens)
    auth_url, csrf_token = oauth.get_authorization_url(REDIRECT_URI)
    check(auth_url.startswith(API.OAUTH2_AUTHORIZE_URL), f"authorize URL {auth_url}")
    check(csrf_token, "a CSRF token")
    # The browser step: the emulator approves at once and redirects to the redirect URI.
    resp = requests.get(auth_url, allow_redirects=False, timeout=10)
    eq(resp.status_code, 302, "authorize status")
    location = urllib.parse.urlparse(resp.headers["Location"])
    eq(f"{location.scheme}://{location.netloc}{location.path}", REDIRECT_URI, "redirect target")
    params = urllib.parse.parse_qs(location.query)
    eq(params.get("state"), [csrf_token], "state in the redirect")
    code = params["code"][0]

    access, refresh = oauth.authenticate(code)
    check(access and refresh, "tokens from the code")
    eq(stored, [(access, refresh)], "store_tokens after authenticate")
    client = Client(oauth)
    eq(client.user().get().id, ADMIN_ID, "user of the OAuth tokens")

    # The code is single use.
    try:
        OAuth2(client_id=CLIENT_ID, client_secret=CLIENT_SECRET).authenticate(code)
        raise AssertionError("a used code was accepted again")
    except BoxOAuthException as e:
        eq(e.status, 400, "reused code status")

    new_access, new_refresh = oauth.refresh(access)
    check(new_access != access and new_refresh != refresh, "refresh rotates both tokens")
    eq(stored[-1], (new_access, new_refresh), "store_tokens after refresh")
    eq(client.user().get().id, ADMIN_ID, "user after refresh")
    # Box refresh tokens are single use.
    try:
        OAuth2(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, access_token=access,
               refresh_token=refresh).refresh(access)
        raise AssertionError("a used refresh token was accepted again")
    except BoxOAuthException as e:
        eq(e.status, 400, "reused refresh token status")

    # An expired access token is refreshed by the SDK on the 401 it gets.
    auto = OAuth2(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, access_token="expired-token",
                  refresh_token=new_refresh, store_tokens=store_tokens)
    eq(Client(auto).user().get().id, ADMIN_ID, "user after an automatic refresh")
    eq(stored[-1][0], auto.access_token, "store_tokens after the automatic refresh")
    check(stored[-1][1] != new_refresh, "the automatic refresh rotated the refresh token")

    auto.revoke()
    resp = requests.get(f"{API.BASE_API_URL}/users/me", timeout=10,
                        headers={"Authorization": f"Bearer {stored[-1][0]}"})
    eq(resp.status_code, 401, "revoked access token")


@flow("oauth2_given_tokens")
def oauth2_given_tokens(ctx):
    oauth = OAuth2(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    url, _ = oauth.get_authorization_url(REDIRECT_URI)
    code = urllib.parse.parse_qs(urllib.parse.urlparse(
        requests.get(url, allow_redirects=False, timeout=10).headers["Location"]).query)["code"][0]
    access, refresh = oauth.authenticate(code)
    again = OAuth2(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, access_token=access,
                   refresh_token=refresh)
    eq(Client(again).user().get().id, ADMIN_ID, "user of given tokens")
    again.revoke()


@flow("developer_token_client")
def developer_token_client(ctx):
    asked = []

    def token():
        asked.append(1)
        return DEV_TOKEN

    from boxsdk.auth import DeveloperTokenAuth

    client = DeveloperTokenClient(oauth=DeveloperTokenAuth(get_new_token_callback=token))
    eq(client.user().get().id, ADMIN_ID, "developer token user")
    eq(len(asked), 1, "token callback calls")


@flow("user_login")
def user_login(ctx):
    me = ctx.client.user().get()
    eq(me.id, ADMIN_ID, "me.id")
    check(me.login and "@" in me.login, f"login {me.login!r}")
    eq(me.type, "user", "type")
    by_id = ctx.client.user(ADMIN_ID).get(fields=["login", "name"])
    eq(by_id.login, me.login, "login by id")


@flow("root_folder")
def root_folder(ctx):
    root = ctx.client.folder("0").get()
    eq(root.id, "0", "root id")
    eq(root.name, "All Files", "root name")
    eq(root.owned_by.id, ADMIN_ID, "root owner")
    check(hasattr(root, "item_collection"), "root has item_collection")


@flow("folder_items_limit_offset")
def folder_items_limit_offset(ctx):
    folder = ctx.work_folder().create_subfolder("paging")
    names = [f"item{i}" for i in range(5)]
    for n in names[:3]:
        folder.create_subfolder(n)
    for n in names[3:]:
        folder.upload_stream(io.BytesIO(n.encode()), n)
    everything = [i.name for i in folder.get_items()]
    eq(sorted(everything), names, "all items")
    eq([i.type for i in folder.get_items()], ["folder"] * 3 + ["file"] * 2, "folders first")
    # limit=2 from offset 1: the SDK pages through the rest, two at a time.
    paged = [i.name for i in folder.get_items(limit=2, offset=1)]
    eq(paged, everything[1:], "items from offset 1 by 2")
    two = list(itertools.islice(folder.get_items(limit=2, offset=3, fields=["name", "size"]), 2))
    eq([i.name for i in two], everything[3:5], "two from offset 3")
    eq([i.size for i in two], [5, 5], "sizes asked by fields")
    page = ctx.client.make_request("GET", folder.get_url("items"),
                                   params={"limit": 2, "offset": 1}).json()
    eq((page["total_count"], page["offset"], page["limit"], len(page["entries"])), (5, 1, 2, 2),
       "one page")
    eq(len(list(folder.get_items(limit=1, offset=5))), 0, "offset past the end")
    marker = [i.name for i in folder.get_items(limit=2, use_marker=True)]
    eq(marker, everything, "marker paging")


@flow("create_subfolder_chain")
def create_subfolder_chain(ctx):
    l1 = ctx.work_folder().create_subfolder("L1")
    l2 = l1.create_subfolder("L2")
    l3 = l2.create_subfolder("L3")
    got = ctx.client.folder(l3.id).get()
    eq([e.name for e in got.path_collection["entries"]],
       ["All Files", f"boxsdk-flows-{RUN_TAG}", "L1", "L2"], "path of L3")
    eq(got.parent.id, l2.id, "parent of L3")
    try:
        l1.create_subfolder("L2")
        raise AssertionError("a duplicate name was accepted")
    except BoxAPIException as e:
        eq(e.status, 409, "duplicate status")
        eq(e.code, "item_name_in_use", "duplicate code")
        conflicts = e.context_info["conflicts"]
        conflict = conflicts[0] if isinstance(conflicts, list) else conflicts
        eq(conflict["id"], l2.id, "conflict id")
    ctx.l1 = l1


@flow("folder_shared_link")
def folder_shared_link(ctx):
    folder = ctx.work_folder().create_subfolder("shared")
    url = folder.get_shared_link(access="open")
    check(url.startswith("http"), f"shared link url {url!r}")
    link = ctx.client.folder(folder.id).get(fields=["shared_link"]).shared_link
    eq(link["url"], url, "shared_link.url")
    eq(link["access"], "open", "shared_link.access")
    eq(link.get("download_url"), None, "folders have no download_url")
    # The same link is kept when asked again.
    eq(folder.get_shared_link(access="open"), url, "link asked twice")
    folder.remove_shared_link()
    eq(ctx.client.folder(folder.id).get(fields=["shared_link"]).shared_link, None, "link removed")


@flow("file_upload_get_rename_move_download_lock")
def file_ops(ctx):
    work = ctx.work_folder()
    content = b"Hello from boxsdk flows\n" * 100
    uploaded = work.upload_stream(io.BytesIO(content), "hello.txt")
    eq(uploaded.name, "hello.txt", "uploaded name")
    eq(uploaded.size, len(content), "uploaded size")
    eq(uploaded.sha1, hashlib.sha1(content).hexdigest(), "uploaded sha1")

    got = ctx.client.file(uploaded.id).get()
    eq(got.parent.id, work.id, "parent")
    eq(got.size, len(content), "size")
    eq(got.etag, uploaded.etag, "etag after upload")
    eq(got.response_object["file_version"]["sha1"], got.sha1, "file_version sha1")

    renamed = got.rename("renamed.txt")
    eq(renamed.name, "renamed.txt", "renamed")
    check(renamed.etag != got.etag, "rename changes the etag")

    target = work.create_subfolder("moved-here")
    moved = renamed.move(parent_folder=target)
    eq(moved.parent.id, target.id, "moved parent")
    eq(moved.name, "renamed.txt", "name kept across move")
    eq([i.name for i in target.get_items()], ["renamed.txt"], "target listing")

    eq(ctx.client.file(uploaded.id).content(), content, "content()")
    eq(ctx.client.file(uploaded.id).content(byte_range=(6, 9)), content[6:10], "ranged content()")
    buf = io.BytesIO()
    ctx.client.file(uploaded.id).download_to(buf)
    eq(buf.getvalue(), content, "download_to")

    ctx.client.file(uploaded.id).lock(prevent_download=True)
    # `lock` is a File--Full field (and a method of the SDK's File): read it with fields=.
    lock = ctx.client.file(uploaded.id).get(fields=["lock"]).response_object["lock"]
    check(lock is not None, "lock present")
    eq(lock["type"], "lock", "lock type")
    eq(lock["is_download_prevented"], True, "is_download_prevented")
    eq(lock["created_by"]["id"], ADMIN_ID, "lock created_by")
    ctx.client.file(uploaded.id).unlock()
    eq(ctx.client.file(uploaded.id).get(fields=["lock"]).response_object["lock"], None,
       "lock gone")

    # A new version through the SDK, with If-Match on the current etag.
    current = ctx.client.file(uploaded.id).get()
    v2 = current.update_contents_with_stream(io.BytesIO(b"version two"), etag=current.etag)
    eq(v2.size, len(b"version two"), "new version size")
    eq(ctx.client.file(uploaded.id).content(), b"version two", "new version content")
    try:
        current.update_contents_with_stream(io.BytesIO(b"stale"), etag=current.etag)
        raise AssertionError("a stale If-Match was accepted")
    except BoxAPIException as e:
        eq(e.status, 412, "stale etag status")

    copy = ctx.client.file(uploaded.id).copy(parent_folder=work, name="copy.txt")
    eq(copy.name, "copy.txt", "copy name")
    check(ctx.client.file(copy.id).delete(), "delete the copy")
    try:
        ctx.client.file(copy.id).get()
        raise AssertionError("a deleted file is still readable")
    except BoxAPIException as e:
        eq(e.status, 404, "deleted file status")
    ctx.file_id = uploaded.id


def _big_file(size):
    path = os.path.join(tempfile.mkdtemp(prefix="boxsdk-flows-"), f"big-{size}.bin")
    block = hashlib.sha256(RUN_TAG.encode()).digest() * 32768  # 1 MiB of varied bytes
    with open(path, "wb") as f:
        left = size
        i = 0
        while left > 0:
            chunk = bytes([i % 251]) + block[1:]
            f.write(chunk[:left])
            left -= min(left, len(chunk))
            i += 1
    with open(path, "rb") as f:
        sha1 = hashlib.sha1(f.read()).hexdigest()
    return path, sha1


@flow("chunked_upload")
def chunked_upload(ctx):
    size = 21 * 1024 * 1024 + 12345  # above Box's 20 MB minimum for upload sessions
    path, sha1 = _big_file(size)
    work = ctx.work_folder()
    uploader = work.get_chunked_uploader(path, file_name="big.bin")
    session = uploader._upload_session  # pylint: disable=protected-access
    check(session.part_size > 0 and session.total_parts >= 2,
          f"session part_size {session.part_size}, total_parts {session.total_parts}")
    eq(session.total_parts, -(-size // session.part_size), "total_parts")
    uploaded = uploader.start()
    check(uploaded is not None, "commit returned the file")
    eq(uploaded.name, "big.bin", "chunked name")
    eq(uploaded.size, size, "chunked size")
    eq(uploaded.sha1, sha1, "chunked sha1")
    with open(path, "rb") as f:
        eq(hashlib.sha1(ctx.client.file(uploaded.id).content()).hexdigest(),
           hashlib.sha1(f.read()).hexdigest(), "chunked content")

    # A new version of the same file from a stream, through a session on the file. Each
    # commit of the session first answers 202 + Retry-After (the emulator's
    # commit_retry_polls knob, read when the session is made) more often than the SDK retries
    # by itself: start() then returns None and resume() commits again, as the SDK's docs say.
    data = open(path, "rb").read()[::-1]
    knobs = requests.get(f"{BASE}/_emulator/knobs", timeout=10).json()
    admin = {"Authorization": f"Bearer {DEV_TOKEN}"}  # only the admin may change knobs
    requests.put(f"{BASE}/_emulator/knobs", timeout=10, headers=admin,
                 json={**knobs, "commit_retry_polls": API.MAX_RETRY_ATTEMPTS + 1},
                 ).raise_for_status()
    try:
        session = ctx.client.file(uploaded.id).create_upload_session(file_size=len(data))
    finally:
        requests.put(f"{BASE}/_emulator/knobs", json=knobs, timeout=10,
                     headers=admin).raise_for_status()
    eq(list(session.get_parts()), [], "no parts yet")
    uploader = session.get_chunked_uploader_for_stream(io.BytesIO(data), len(data))
    eq(uploader.start(), None, "start() after the SDK's retries of a 202 commit")
    v2 = uploader.resume()
    eq(v2.id, uploaded.id, "new version keeps the id")
    eq(v2.sha1, hashlib.sha1(data).hexdigest(), "new version sha1")

    # An aborted session is gone.
    session = work.create_upload_session(file_size=size, file_name="aborted.bin")
    check(session.abort(), "abort")
    try:
        list(session.get_parts())
        raise AssertionError("an aborted session still answers")
    except BoxAPIException as e:
        eq(e.status, 404, "aborted session status")
    os.remove(path)


@flow("search")
def search(ctx):
    work = ctx.work_folder()
    word = f"zebra{RUN_TAG}"
    f = work.upload_stream(io.BytesIO(b"search me"), f"{word}-notes.txt")
    work.create_subfolder(f"{word}-folder")
    found = list(ctx.client.search().query(word, limit=10))
    eq(sorted(i.name for i in found), sorted([f"{word}-folder", f"{word}-notes.txt"]), "hits")
    files = list(ctx.client.search().query(word, result_type="file", ancestor_folders=[work],
                                           file_extensions=["txt"]))
    eq([i.id for i in files], [f.id], "file hits")
    eq(list(ctx.client.search().query(f"nothing{RUN_TAG}")), [], "no hits")


@flow("search_metadata_filters")
def search_metadata_filters(ctx):
    key = f"flows{RUN_TAG}"
    template = ctx.client.create_metadata_template(
        "Flows Template", [
            MetadataField(MetadataFieldType.STRING, "Customer", key="customer"),
            MetadataField(MetadataFieldType.FLOAT, "Amount", key="amount"),
        ], template_key=key)
    eq(template.templateKey, key, "template key")
    work = ctx.work_folder()
    a = work.upload_stream(io.BytesIO(b"a"), "invoice-a.txt")
    b = work.upload_stream(io.BytesIO(b"b"), "invoice-b.txt")
    a.metadata("enterprise", key).create({"customer": "Acme", "amount": 100.0})
    b.metadata("enterprise", key).create({"customer": "Globex", "amount": 900.0})

    filters = MetadataSearchFilters()
    by_value = MetadataSearchFilter(template_key=key, scope="enterprise")
    by_value.add_value_based_filter("customer", "Acme")
    filters.add_filter(by_value)
    eq([i.id for i in ctx.client.search().query(None, metadata_filters=filters)], [a.id],
       "value filter")

    filters = MetadataSearchFilters()
    by_range = MetadataSearchFilter(template_key=key, scope="enterprise")
    by_range.add_range_filter("amount", gt_value=500)
    filters.add_filter(by_range)
    eq([i.id for i in ctx.client.search().query(None, metadata_filters=filters)], [b.id],
       "range filter")


@flow("events")
def events(ctx):
    ev = ctx.client.events()
    pos = ev.get_latest_stream_position()
    check(str(pos).isdigit(), f"latest stream position {pos!r}")
    folder = ctx.work_folder().create_subfolder("evented")
    got = ev.get_events(stream_position=pos, limit=100)
    types = [(e["event_type"], e["source"]["id"]) for e in got["entries"] if e.get("source")]
    check(("ITEM_CREATE", folder.id) in types, f"ITEM_CREATE of the new folder in {types}")
    check(int(got["next_stream_position"]) > int(pos), "the position moves on")
    eq(got["chunk_size"], len(got["entries"]), "chunk_size")
    again = ev.get_events(stream_position=got["next_stream_position"])
    eq(again["entries"], [], "nothing after the end")
    eq(ev.get_events(stream_position="now")["entries"], [], "'now' gives no events")


@flow("events_long_poll")
def events_long_poll(ctx):
    ev = ctx.client.events()
    pos = ev.get_latest_stream_position()
    arrived = queue.Queue()

    def listen():
        try:
            for event in ev.generate_events_with_long_polling(stream_position=pos):
                arrived.put(event)
        except Exception as e:  # pylint: disable=broad-except
            arrived.put(e)

    threading.Thread(target=listen, daemon=True).start()
    # Long enough for a first poll to time out with `reconnect` (the test runs the emulator
    # with BOXEMU_LONGPOLL_TIMEOUT seconds), so the SDK polls again.
    time.sleep(float(os.environ.get("BOXEMU_LONGPOLL_TIMEOUT", "0")) + 1.0)
    other = dev_client()  # another client makes the change
    folder = other.folder(ctx.work_folder().id).create_subfolder(f"longpoll-{RUN_TAG}")
    deadline = time.time() + 20
    seen = []
    while time.time() < deadline:
        try:
            event = arrived.get(timeout=deadline - time.time())
        except queue.Empty:
            break
        if isinstance(event, Exception):
            raise event
        source = event["source"] if "source" in event.response_object else None
        # The SDK turns the source into a Folder/File object; its JSON keys index it.
        seen.append((event["event_type"], source["id"] if source else None))
        if seen[-1] == ("ITEM_CREATE", folder.id):
            return
    raise AssertionError(f"ITEM_CREATE of {folder.id} did not arrive by long poll; saw {seen}")


@flow("metadata")
def metadata(ctx):
    f = ctx.work_folder().upload_stream(io.BytesIO(b"m"), f"meta-{RUN_TAG}.txt")
    md = f.metadata()  # global/properties takes any keys
    try:
        md.get()
        raise AssertionError("metadata before it was created")
    except BoxAPIException as e:
        eq(e.status, 404, "missing instance status")
    created = md.create({"color": "blue", "size": "large"})
    eq(created["color"], "blue", "created color")
    eq(created["$parent"], f"file_{f.id}", "$parent")
    eq(created["$template"], "properties", "$template")
    eq(created["$scope"], "global", "$scope")
    eq(md.get()["size"], "large", "get")
    update = md.start_update()
    update.add("/shape", "round")
    update.update("/color", "green", old_value="blue")  # test + replace
    update.test("/size", "large")
    updated = md.update(update)
    eq((updated["color"], updated["shape"], updated["size"]), ("green", "round", "large"),
       "updated values")
    check(updated["$version"] > created["$version"], "$version increases")
    # A failing test op changes nothing.
    failing = md.start_update()
    failing.add("/other", "x")
    failing.test("/color", "purple")
    try:
        md.update(failing)
        raise AssertionError("a failing test op was applied")
    except BoxAPIException as e:
        check(e.status in (400, 409), f"failing test status {e.status}")
    check("other" not in md.get(), "a failed patch changes nothing")
    all_md = list(f.get_all_metadata())
    eq([m["$template"] for m in all_md], ["properties"], "all metadata")
    check(md.delete(), "delete instance")


@flow("as_user_rename")
def as_user_rename(ctx):
    login = f"arya-{RUN_TAG}@example.com"
    user = ctx.client.create_user("Arya Stark", login=login)
    eq(user.login, login, "new user login")
    as_arya = ctx.client.as_user(user)
    eq(as_arya.user().get().id, user.id, "As-User /users/me")
    folder = as_arya.folder("0").create_subfolder("arya's")
    eq(folder.owned_by.id, user.id, "owner of a folder made as the user")
    renamed = as_arya.folder(folder.id).rename("arya's renamed")
    eq(renamed.name, "arya's renamed", "renamed as the user")
    # The admin itself does not see it in its own root.
    check(all(i.id != folder.id for i in ctx.client.folder("0").get_items()),
          "the user's folder is not in the admin's root")


def _jwt_settings():
    check(JWT_CONFIG and os.path.exists(JWT_CONFIG), f"the emulator's JWT config {JWT_CONFIG!r}")
    with open(JWT_CONFIG, encoding="utf-8") as f:
        return json.load(f)


@flow("jwt_app_user")
def jwt_app_user(ctx):
    settings = _jwt_settings()
    auth = JWTAuth.from_settings_file(JWT_CONFIG)
    token = auth.authenticate_instance()
    check(token, "an enterprise token")
    client = Client(auth)
    sa = client.user().get()
    check(sa.login.startswith("AutomationUser_"), f"service account login {sa.login!r}")
    ned = client.create_user(f"Ned Stark {RUN_TAG}")
    check(ned.login.startswith("AppUser_"), f"app user login {ned.login!r}")
    ned_auth = JWTAuth.from_settings_file(JWT_CONFIG, user=ned)
    ned_auth.authenticate_user()
    ned_client = Client(ned_auth)
    eq(ned_client.user().get().id, ned.id, "the app user's token")
    folder = ned_client.folder("0").create_subfolder("winterfell")
    eq(folder.owned_by.id, ned.id, "owner of the app user's folder")
    # The same through a settings dictionary, as the SDK docs show.
    again = JWTAuth.from_settings_dictionary(settings)
    again.authenticate_instance()
    eq(Client(again).user().get().id, sa.id, "service account again")


@flow("ccg")
def ccg(ctx):
    auth = CCGAuth(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, enterprise_id=ENTERPRISE_ID)
    client = Client(auth)
    sa = client.user().get()
    check(sa.login.startswith("AutomationUser_"), f"service account login {sa.login!r}")
    as_admin = Client(CCGAuth(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, user=ADMIN_ID))
    eq(as_admin.user().get().id, ADMIN_ID, "CCG for a user")
    try:
        Client(CCGAuth(client_id=CLIENT_ID, client_secret="wrong",
                       enterprise_id=ENTERPRISE_ID)).user().get()
        raise AssertionError("a wrong secret was accepted")
    except BoxOAuthException as e:
        eq(e.status, 400, "wrong secret status")


@flow("trash_restore_purge")
def trash_restore_purge(ctx):
    work = ctx.work_folder()
    f = work.upload_stream(io.BytesIO(b"trash me"), f"trash-{RUN_TAG}.txt")
    folder = work.create_subfolder(f"trash-dir-{RUN_TAG}")
    check(f.delete(), "delete file")
    check(folder.delete(), "delete folder")
    trash = ctx.client.trash()
    ids = {i.id for i in trash.get_items()}
    check({f.id, folder.id} <= ids, f"both in the trash: {ids}")
    eq(trash.get_item(f).item_status, "trashed", "trashed item_status")
    restored = trash.restore_item(f)
    eq(restored.parent.id, work.id, "restored into its folder")
    eq(ctx.client.file(f.id).get().item_status, "active", "restored item_status")
    check(trash.permanently_delete_item(folder), "purge")
    try:
        trash.get_item(folder)
        raise AssertionError("a purged folder is still in the trash")
    except BoxAPIException as e:
        eq(e.status, 404, "purged status")


@flow("file_versions")
def file_versions(ctx):
    f = ctx.work_folder().upload_stream(io.BytesIO(b"v1"), f"versions-{RUN_TAG}.txt")
    f.update_contents_with_stream(io.BytesIO(b"v2 longer"))
    f.update_contents_with_stream(io.BytesIO(b"v3"))
    old = list(f.get_previous_versions())
    eq(len(old), 2, "two previous versions")
    by_sha1 = {v.sha1: v for v in old}
    oldest = by_sha1[hashlib.sha1(b"v1").hexdigest()]
    eq(oldest.size, 2, "oldest version size")
    eq(by_sha1[hashlib.sha1(b"v2 longer").hexdigest()].size, 9, "middle version size")
    promoted = f.promote_version(oldest)
    eq(promoted.sha1, hashlib.sha1(b"v1").hexdigest(), "promoted version sha1")
    eq(ctx.client.file(f.id).content(), b"v1", "content after promote")
    eq(len(list(f.get_previous_versions())), 3, "promoting keeps the history")


@flow("preflight_and_download_url")
def preflight_and_download_url(ctx):
    work = ctx.work_folder()
    # Box answers a passing preflight with the URL to upload to (the SDK hands it back).
    upload_url = work.preflight_check(size=1000, name=f"pre-{RUN_TAG}.txt")
    check(upload_url is None or upload_url.startswith(BASE), f"preflight upload_url {upload_url!r}")
    f = work.upload_stream(io.BytesIO(b"download me"), f"pre-{RUN_TAG}.txt")
    try:
        work.preflight_check(size=10, name=f"pre-{RUN_TAG}.txt")
        raise AssertionError("preflight accepted a taken name")
    except BoxAPIException as e:
        eq(e.status, 409, "preflight conflict status")
    url = f.get_download_url()
    eq(requests.get(url, timeout=10).content, b"download me", "download URL works unauthenticated")


@flow("copy_folder_and_collaborate")
def copy_folder_and_collaborate(ctx):
    work = ctx.work_folder()
    src = work.create_subfolder(f"copy-src-{RUN_TAG}")
    src.upload_stream(io.BytesIO(b"inside"), "inside.txt")
    src.create_subfolder("child")
    dup = src.copy(parent_folder=work, name=f"copy-dst-{RUN_TAG}")
    eq(sorted(i.name for i in dup.get_items()), ["child", "inside.txt"], "copied items")
    other = ctx.client.create_user("Sansa", login=f"sansa-{RUN_TAG}@example.com")
    collab = src.collaborate(other, "editor")
    eq(collab.role, "editor", "collaboration role")
    seen = ctx.client.as_user(other).folder(src.id).get()
    eq(seen.name, src.name, "the collaborator sees the folder")
    eq([c.id for c in src.get_collaborations()], [collab.id], "collaborations")


@flow("shared_item")
def shared_item(ctx):
    f = ctx.work_folder().upload_stream(io.BytesIO(b"shared"), f"shared-{RUN_TAG}.txt")
    url = f.get_shared_link(access="open")
    item = ctx.client.get_shared_item(url)
    eq((item.type, item.id), ("file", f.id), "shared item")
    eq(item.content(), b"shared", "content through the shared link")
    dl = f.get_shared_link_download_url(access="open")
    eq(requests.get(dl, timeout=10).content, b"shared", "shared download URL")


@flow("make_request")
def make_request(ctx):
    body = json.dumps({"name": "made-by-hand", "parent": {"id": ctx.work_folder().id}})
    resp = ctx.client.make_request("POST", ctx.client.get_url("folders"),
                                   params={"fields": "name,id"}, data=body)
    got = resp.json()
    eq(got["name"], "made-by-hand", "name")
    eq(sorted(got), ["etag", "id", "name", "type"], "only the asked fields")


@flow("logging_client")
def logging_client(ctx):
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    keep = Keep()
    logging.getLogger("boxsdk.network").addHandler(keep)
    printed = io.StringIO()
    try:
        # LoggingClient logs every request and response to stdout (its handler keeps the
        # stdout it saw when it was made).
        with contextlib.redirect_stdout(printed):
            client = LoggingClient(OAuth2(client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                                          access_token=DEV_TOKEN))
            eq(client.user().get().id, ADMIN_ID, "user")
    finally:
        logging.getLogger("boxsdk.network").removeHandler(keep)
    text = "\n".join(records)
    check(f"GET {API.BASE_API_URL}/users/me" in text, f"request logged: {text[:500]}")
    check(DEV_TOKEN not in text, "the token is not logged")
    check(f"'id': '{ADMIN_ID}'" in text, f"response logged: {text[:500]}")
    check(f"GET {API.BASE_API_URL}/users/me" in printed.getvalue(), "printed to stdout")


def main(argv):
    wanted = argv[1:]
    ctx = Ctx()
    failed = []
    for name, fn in FLOWS:
        if wanted and not any(w in name for w in wanted):
            continue
        started = time.time()
        try:
            fn(ctx)
        except Exception:  # pylint: disable=broad-except
            failed.append(name)
            print(f"FAIL {name} ({time.time() - started:.1f}s)", flush=True)
            traceback.print_exc(file=sys.stdout)
            sys.stdout.flush()
            continue
        print(f"ok   {name} ({time.time() - started:.1f}s)", flush=True)
    if failed:
        print(f"{len(failed)} flow(s) failed: {', '.join(failed)}", flush=True)
        return 1
    print("all flows passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
