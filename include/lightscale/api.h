/* SPDX-License-Identifier: MIT */
/*
 * Lightscale control API v1: the contract between lightscale-control (control/) and
 * every client (the `lightscale` CLI and agent, tests). JSON over HTTP(S).
 *
 * Errors, always with a 4xx/5xx status:
 *   {"error": {"code": "token_expired", "message": "enrollment token expired at 2026-..."}}
 * Codes are the LS_ERR_* strings below; clients branch on the code, print the message.
 *
 * ---------------------------------------------------------------------------------------
 * Node API (machine-key signed except register)
 *
 * POST /v1/register            (not signed; the token authorises it)
 *   request  {"token": "lst_...", "wg_key": "<base64 X25519 public>",
 *             "machine_key": "<base64 Ed25519 public>", "hostname": "laptop",
 *             "routes": ["192.168.1.0/24", "0.0.0.0/0"],   (optional: advertised)
 *             "endpoints": ["192.0.2.1:51820"],             (optional)
 *             "listen_port": 51820}                          (optional)
 *   response {"node": <self object, below>, "network": <network object, below>}
 *   A machine key that is already registered in the network returns its existing node
 *   (idempotent re-register); a token is only consumed by a new registration.
 *
 * Signed requests carry these headers (see lib/sign.h):
 *   X-Lightscale-Key:       base64 Ed25519 machine public key
 *   X-Lightscale-Timestamp: unix seconds (server allows +-LS_SIGN_MAX_SKEW)
 *   X-Lightscale-Nonce:     32 hex characters (16 random bytes), never reused
 *   X-Lightscale-Signature: base64 Ed25519 signature over the canonical string
 *       "lightscale-v1\n" METHOD "\n" PATH_WITH_QUERY "\n" TIMESTAMP "\n" NONCE "\n"
 *       hex(SHA-256(body))
 *   401 with code "bad_signature", "stale_request" (message names the clock skew) or
 *   "replayed_request"; 403 "node_revoked"; 404 "unknown_node".
 *
 * POST /v1/register            (no "token": signed by "machine_key", see below)
 *   A device without an enrollment token asks an admin to admit it (auth-URL onboarding).
 *   request  as above without "token"; the X-Lightscale-* signature headers must be made
 *            with the machine key the body names (proof of possession), else 401
 *            bad_signature; stale_request and replayed_request as for signed requests.
 *   response 202 {"status": "waiting", "request": 12,       device request id
 *                 "approval_url": "https://HOST/approve/CODE",  (absent when the Host
 *                                                   header cannot make a link)
 *                 "approval_path": "/approve/CODE",  the same link on any server name
 *                 "expires_at": 1767225600}          the link's end (unix seconds)
 *            CODE is LS_APPROVE_CODE_LEN lowercase hex digits, single use; the server
 *            keeps only its SHA-256. Nothing else is created until an admin approves: no
 *            node, name or address. Asking again ends the older link and answers a new one.
 *            A machine key that is a node already answers like a token registration again
 *            (200 {"node", "network"} plus "status": "registered").
 *   errors   403 device_rejected (an admin rejected this machine key; a new key may ask
 *            again); 429 rate_limited (requests without a token per source address and
 *            per server, waiting requests per source address and in all: the server's
 *            config "device_requests", control/config.c; the message names the limit hit);
 *            401 token_invalid from a server whose database predates tokenless requests.
 *
 * GET /v1/register/status      (signed by the machine key; no node needed)
 *   response 200, for a machine key that is a node: {"node", "network"} as register
 *            answers, plus "status": "approved" (node active) | "pending" (approval
 *            network, not yet approved) | "rejected" | "revoked" (| the node's own status);
 *            otherwise its newest device request: {"status", "request", "expires_at"}
 *            with "status": "waiting" | "expired" (link ended undecided: ask again) |
 *            "rejected" | "removed" (approved, but the node was deleted since).
 *   errors   404 unknown_node: no node and no request of this machine key.
 *
 * POST /v1/heartbeat           (signed)
 *   request  {"endpoints": ["192.0.2.1:51820", "[2001:db8::1]:51820"],
 *             "listen_port": 51820, "routes": ["192.168.1.0/24"]}    (routes optional)
 *   response {"ok": true, "observed": "203.0.113.7:51820", "version": 42}
 *   The server merges the observed endpoint (request source address + listen_port).
 *
 * GET /v1/netmap?since=V&wait=S  (signed)
 *   since=0 (or absent) returns the full map at once. Otherwise the server answers when
 *   the network's version exceeds V, or after S seconds (capped by the server) with
 *   304-like {"version": V, "unchanged": true}.
 *
 * GET /v1/health                -> {"ok": true, "database": "ok", "schema_version": 3}
 *
 * ---------------------------------------------------------------------------------------
 * Netmap document
 * {
 *   "version": 42,                      network's netmap version (monotonic)
 *   "full": true,                       false: a delta against the client's version
 *   "network": {"id": "<uuid>", "name": "home", "ipv4": "100.71.8.0/22",
 *               "ipv6": "fd5c:1f3a:90e2::/48", "dns_suffix": "home.ls.internal"},
 *   "self": {"id": 7, "name": "laptop", "dns_name": "laptop.home.ls.internal",
 *            "wg_key": "<b64>", "addresses": ["100.71.8.7", "fd5c:1f3a:90e2::7"],
 *            "status": "active" | "pending" | "revoked" | "expired",
 *            "key_expiry": 1767225600 | null, "routes": [...advertised...]},
 *   "peers": [{"id": 8, "name": "server", "dns_name": "server.home.ls.internal",
 *              "wg_key": "<b64>", "addresses": ["100.71.8.8", "fd5c:...::8"],
 *              "allowed_ips": ["100.71.8.8/32", "fd5c:...::8/128", "192.168.1.0/24"],
 *              "endpoints": ["192.0.2.8:51820"],
 *              "routes": ["192.168.1.0/24"],          primary: also in allowed_ips
 *              "standby_routes": ["10.0.0.0/24"],     advertised, another peer is primary
 *              "exit_node": true,                     advertises 0.0.0.0/0 and/or ::/0
 *              "online": true, "last_seen": 1767225600, "home_relay": null}],
 *   "peers_removed": [9, 10],           delta only: ids to drop
 *   "relays": {"stun": ["192.0.2.1:3478"],
 *              "turn": [{"url": "turn:192.0.2.1:3478", "username": "u", "credential": "c"}],
 *              "stream": ["192.0.2.1:8443"], "udp": ["192.0.2.1:3479"]},
 *   "dns": {"suffix": "home.ls.internal", "resolvers": [], "search": ["home.ls.internal"],
 *           "records": [{"name": "server.home.ls.internal", "type": "A", "value": "100.71.8.8"}]},
 *   "packet_filter": [...]              (issue 6: ACL compiled for this node)
 * }
 * A delta ("full": false) carries "peers" = peers added or changed (whole objects),
 * "peers_removed", "self" always, and network/relays/dns/packet_filter only when they
 * changed (absent = unchanged). A client that cannot apply a delta asks since=0.
 * An exit node's 0.0.0.0/0 and ::/0 are NOT in allowed_ips of the netmap; the client adds
 * them to the peer it picks as exit node.
 *
 * ---------------------------------------------------------------------------------------
 * Admin API: header "Authorization: Bearer <admin key>"; 401 "bad_admin_key".
 *   POST   /v1/admin/networks                {"name", "ipv4"?, "ipv6"?, "dns_suffix"?}
 *   GET    /v1/admin/networks                -> {"networks": [...]}
 *   GET    /v1/admin/networks/NAME           -> network object + counts
 *   POST   /v1/admin/networks/NAME/tokens    {"ttl": seconds?, "uses": N?, "tags": [..]?}
 *                                            -> {"id": "...", "token": "lst_...", ...}
 *   GET    /v1/admin/networks/NAME/tokens    -> {"tokens": [...]}   (never the secret)
 *   DELETE /v1/admin/tokens/ID               revoke
 *   GET    /v1/admin/networks/NAME/nodes     -> {"nodes": [...]}
 *   GET    /v1/admin/nodes/ID                -> node object
 *   DELETE /v1/admin/nodes/ID                remove the node from its network
 *
 * Admin objects as lightscale-control returns them (times are unix seconds):
 *   network {"id", "name", "ipv4", "ipv6", "dns_suffix", "version", "created_at",
 *            "nodes" (list, show), "valid_tokens" (show)}        POST answers 201
 *   token   {"id", "network", "expires_at", "max_uses", "uses", "tags", "revoked",
 *            "status": "valid"|"expired"|"used_up"|"revoked", "created_at",
 *            "token" (only in the answer to POST, 201)}   defaults: ttl 24 h, uses 1
 *   node    the "self" object plus "network" (name), "hostname", "machine_key",
 *            "endpoints", "listen_port", "tags", "created_at", "last_seen", "online"
 *   DELETE answers 200 with the object as it was.
 *
 * Statuses: 400 bad_request (also 405 for a wrong method), 401 token_invalid,
 * 403 token_expired/token_used_up/token_revoked, 404 unknown_network/not_found,
 * 409 network_exists/bad_key (machine key of another network, WireGuard key in use),
 * 413 body_too_large, 429 rate_limited, 503 unavailable (database unreachable).
 * POST /v1/register answers 201 for a new node, 200 for an existing one.
 * /v1/health also reports "waiters" (suspended long-polls) and "queries" (count).
 *
 * ---------------------------------------------------------------------------------------
 * Trust (control/README.md "Trust" has the details)
 *   POST   /v1/rotate                        (signed) {"wg_key": "<b64>"}: new WireGuard key
 *   GET    /v1/audit?since=N                 (admin key or signed) audit entries + signed head
 *   GET    /approve/CODE                     HTML approval page (auth-URL onboarding)
 *   PATCH  /v1/admin/networks/NAME           {"require_approval"?, "route_approval"?,
 *                                             "key_lifetime"?}
 *   GET    /v1/admin/networks/NAME/routes    advertised routes and their approval
 *   GET|PUT|DELETE /v1/admin/networks/NAME/acl      the ACL policy (lib/acl.h)
 *   POST   /v1/admin/networks/NAME/acl-test  {"src": NODE, "dst": NODE, "port": N, "proto"}
 *   POST   /v1/admin/nodes/ID/approve|reject|revoke
 *   POST   /v1/admin/nodes/ID/approve-routes|reject-routes   {"routes": [CIDR...]}
 *   POST|GET /v1/admin/admin-keys, DELETE /v1/admin/admin-keys/ID
 *   GET    /v1/admin/devices                 -> {"devices": [...]}: tokenless device
 *            requests, newest first (at most 500), each {"id", "hostname", "machine_key",
 *            "wg_key", "source", "status": "waiting"|"expired"|"approved"|"rejected",
 *            "created_at", "expires_at", "node" (0 unless approved), "decided_by" (admin
 *            key id, "" while undecided)}
 *   POST   /v1/admin/devices/ID/approve      {"network": NAME} (required): admits it as an
 *            active node of NAME (also in a require_approval network) -> 200 {"node",
 *            "network", "request"}; 400 bad_request without a network, 404 unknown_network
 *   POST   /v1/admin/devices/ID/reject       (no body) -> 200 {"request", "status":
 *            "rejected"}; its machine key stays refused (device_rejected)
 *            Both: 404 not_found (no such request), 409 conflict (already decided, or its
 *            link expired), 409 bad_key (approve: the machine key is a node already); the
 *            audit log records device_approve / device_reject.
 *   GET    /v1/admin/tls                     TLS keys (control/tls_admin.c, README "TLS") ->
 *            {"server": {"id", "serving": PIN, "staged": PIN (absent: none), "managed": true
 *                        (false: --tls-cert, no staged rotation)},
 *                       ({"serving": null, "managed": false} on --insecure-http),
 *             "identity": "<b64 Ed25519>" ("" without one),
 *             "pins": [{"pin", "state": "next"|"active"|"retiring", "server_id", "server"
 *                       (its listen address), "endorsed" (the identity key's endorsement verifies),
 *                       "not_after", "created_at", "activated_at"? , "retire_at"?,
 *                       "served_here" (this server serves it), and for "next":
 *                       "nodes_seen_since" (active nodes that made a request since it was
 *                       published), "nodes" (active nodes)}]}  (oldest first)
 *   POST   /v1/admin/tls/rotate              (no body) stages a new self-signed key on this
 *            server, or {"cert_file", "key_file"} (absolute paths on the server's host, PEM)
 *            stages that pair (copied to DIR/tls-next.*; the way to rotate a --tls-cert
 *            server); endorsed and published at once -> 200 {"server_id", "pin", "state":
 *            "next", "serving"}; 400 bad_request (only one of the two, a relative path, a
 *            pair that does not load or whose key is not the certificate's); 409 conflict:
 *            a key is staged already, the pair is the one served, plain HTTP, a --tls-cert
 *            server without a pair, or schema < 8 / no identity key
 *   POST   /v1/admin/tls/activate            {"retire_after": seconds}? (default 86400, at
 *            most 10 years; 0: the previous key is withdrawn at once) serves the staged key
 *            from the next handshake on -> 200 {"server_id", "pin", "previous", "retire_at",
 *            "install": {"cert", "key", "as"} (a --tls-cert server: install the pair there
 *            before the next restart, which serves --tls-cert)};
 *            400 bad_request (not an object, retire_after out of range); 409 conflict (no
 *            staged key, or it is not endorsed as "next"; the same refusals as rotate);
 *            503 unavailable
 *   POST   /v1/admin/tls/withdraw            {"pin": "sha256//BASE64"} stops publishing an
 *            endorsed pin now -> 200 {"pin", "withdrawn": true}; 400 bad_request (no pin);
 *            404 not_found (not endorsed); 409 conflict (a server serves it: active, or it
 *            is staged on this server, or schema < 8)
 *            Every change is in the audit log (tls_rotate, tls_activate, tls_withdraw);
 *            another method or path under /v1/admin/tls is 404 not_found.
 *   GET|POST /approve/CODE                   the same decision from the HTML page of the
 *            link (sign-in with an admin key; session cookie LS_APPROVE_COOKIE, Path
 *            /approve/, HttpOnly, SameSite=Strict, Secure over HTTPS). Form fields
 *            "admin_key", "action" (approve|reject|signout), "network": each at most once
 *            and at most LS_FORM_VALUE_MAX bytes decoded, no NUL; a malformed form is 400.
 * Registration of a node in an approval network answers with "approval_url"; token
 * creation also returns "enroll" = "TOKEN@IDENTITY@PIN,PIN..." (accepted wherever a
 * token is; lib/ctlclient's ls_ctl_parse_enroll splits it). Netmaps carry "audit" (the
 * signed head of the audit log, lib/audit.h), "control" (the TLS pins the identity key
 * endorses, lib/tlsid.h) and "packet_filter" (lib/acl.h), and every netmap answer has an
 * LS_HDR_NETMAP_SIG header: Ed25519 by the identity key over "lightscale-netmap-v1" and
 * the body's SHA-256.
 * More statuses: 409 conflict (state does not allow it, e.g. revoking the last admin
 * key), 400 bad_policy (an ACL policy refused; the message names rule and field),
 * 403 node_revoked (revoked or rejected node), 403 device_rejected (a tokenless
 * registration of a machine key an admin rejected).
 */
#ifndef LIGHTSCALE_API_H
#define LIGHTSCALE_API_H

#define LS_API_PREFIX "/v1"
#define LS_HDR_KEY "X-Lightscale-Key"
#define LS_HDR_TIMESTAMP "X-Lightscale-Timestamp"
#define LS_HDR_NONCE "X-Lightscale-Nonce"
#define LS_HDR_SIGNATURE "X-Lightscale-Signature"
#define LS_SIGN_CONTEXT "lightscale-v1"
#define LS_SIGN_MAX_SKEW 300 /* seconds */

#define LS_TOKEN_PREFIX "lst_"
#define LS_MAX_BODY (1024 * 1024) /* request bodies larger than this get 413 */
#define LS_NETMAP_MAX_WAIT 300    /* cap on ?wait=S, seconds */

/* Error codes (the "code" string of an error object). Never reuse a retired one. */
#define LS_ERR_BAD_REQUEST "bad_request"         /* malformed JSON, wrong types */
#define LS_ERR_BODY_TOO_LARGE "body_too_large"
#define LS_ERR_NOT_FOUND "not_found"
#define LS_ERR_UNKNOWN_NETWORK "unknown_network"
#define LS_ERR_NETWORK_EXISTS "network_exists"
#define LS_ERR_TOKEN_INVALID "token_invalid"
#define LS_ERR_TOKEN_EXPIRED "token_expired"
#define LS_ERR_TOKEN_USED_UP "token_used_up"
#define LS_ERR_TOKEN_REVOKED "token_revoked"
#define LS_ERR_BAD_KEY "bad_key"
#define LS_ERR_BAD_SIGNATURE "bad_signature"
#define LS_ERR_STALE_REQUEST "stale_request"
#define LS_ERR_REPLAYED_REQUEST "replayed_request"
#define LS_ERR_UNKNOWN_NODE "unknown_node"
#define LS_ERR_NODE_REVOKED "node_revoked"
#define LS_ERR_BAD_ADMIN_KEY "bad_admin_key"
#define LS_ERR_RATE_LIMITED "rate_limited"
#define LS_ERR_INTERNAL "internal"
#define LS_ERR_UNAVAILABLE "unavailable" /* database unreachable */
#define LS_ERR_CONFLICT "conflict"
#define LS_ERR_BAD_POLICY "bad_policy"
#define LS_ERR_DEVICE_REJECTED "device_rejected" /* tokenless request of a rejected key */

#define LS_HDR_NETMAP_SIG "X-Lightscale-Netmap-Signature"

/* The approval page (/approve/CODE) */
#define LS_APPROVE_CODE_LEN 32        /* lowercase hex digits of CODE */
#define LS_APPROVE_COOKIE "lsc_approve" /* its sign-in session cookie */
#define LS_APPROVE_SESSION_LEN 64     /* lowercase hex digits of a session id */
#define LS_FORM_VALUE_MAX 4096        /* bytes of a decoded form field */

#endif
