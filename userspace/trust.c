// SPDX-License-Identifier: MIT
/* Agent-side verification of netmaps against the audit log: see trust.h. */
#include "trust.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "keys.h"
#include "log.h"
#include "tlsid.h"
#include "util.h"

#define TRUST_FILE "trust.json"

static int fail(char *err, size_t errlen, int ret, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int ret, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (err && errlen)
		vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return ret;
}

static json_t *load_state(const char *dir)
{
	char path[4200], *buf = NULL;
	size_t len;
	json_t *j = NULL;

	snprintf(path, sizeof(path), "%s/" TRUST_FILE, dir);
	if (ls_read_file(path, &buf, &len, 64 << 20) == 0) {
		j = json_loadb(buf, len, 0, NULL);
		free(buf);
	}
	if (!json_is_object(j)) {
		json_decref(j);
		j = json_pack("{s:n, s:n, s:{}}", "identity", "head", "keys");
	}
	return j;
}

static int save_state(const char *dir, json_t *st)
{
	char path[4200], *s = json_dumps(st, JSON_COMPACT | JSON_SORT_KEYS);
	int ret;

	if (!s)
		return -ENOMEM;
	snprintf(path, sizeof(path), "%s/" TRUST_FILE, dir);
	ret = ls_write_file_atomic(path, s, strlen(s), 0600);
	free(s);
	return ret;
}

/* GET /v1/audit?since=from, every page, up to seq `to` */
static int fetch_entries(struct ls_ctl *c, uint64_t from, uint64_t to, json_t **out, char *err,
			 size_t errlen)
{
	json_t *all = json_array(), *v;
	uint64_t since = from;
	size_t i;

	while (since < to) {
		struct ls_ctl_response resp = { 0 };
		struct ls_ctl_error e;
		char path[96];
		bool got = false;
		int ret;

		snprintf(path, sizeof(path), "/v1/audit?since=%" PRIu64, since);
		ret = ls_ctl_request_json(c, "GET", path, NULL, LS_CTL_AUTH_SIGNED, 0, &resp, &e);
		if (ret) {
			json_decref(all);
			return fail(err, errlen, -EIO, "cannot fetch the audit log: %s (%s)", e.message,
				    e.code);
		}
		json_array_foreach(json_object_get(resp.json, "entries"), i, v) {
			uint64_t seq = (uint64_t)json_integer_value(json_object_get(v, "seq"));

			if (seq != since + 1) {
				ls_ctl_response_free(&resp);
				json_decref(all);
				return fail(err, errlen, -EPERM,
					    "audit log: entry %" PRIu64 " follows %" PRIu64 " (a gap)",
					    seq, since);
			}
			if (seq > to)
				break;
			json_array_append(all, v);
			since = seq;
			got = true;
		}
		ls_ctl_response_free(&resp);
		if (!got)
			break;
	}
	if (since != to) {
		json_decref(all);
		return fail(err, errlen, -EPERM,
			    "audit log: the server has entries up to %" PRIu64 " but its head names %" PRIu64,
			    since, to);
	}
	*out = all;
	return 0;
}

static int read_wg_key(const char *dir, const char *file, uint8_t priv[32])
{
	char path[4200], *buf = NULL;
	size_t len;
	int ret;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	ret = ls_read_file(path, &buf, &len, 4096);
	if (ret)
		return ret;
	buf[strcspn(buf, "\r\n")] = '\0';
	ret = ls_key_from_base64(priv, buf) ? -EINVAL : 0;
	ls_memzero(buf, len);
	free(buf);
	return ret;
}

int ls_trust_rotate(struct ls_ctl *c, const char *dir, char *pub_out, char *err, size_t errlen)
{
	struct ls_ctl_response resp = { 0 };
	struct ls_ctl_error e;
	uint8_t priv[32], pub[32];
	char b64[LS_KEY_B64_LEN + 2], pb[LS_KEY_B64_LEN + 1], np[4200], kp[4200];
	int ret;

	ls_wg_genkey(priv);
	ls_wg_pubkey(pub, priv);
	ls_key_to_base64(b64, priv);
	strcat(b64, "\n");
	snprintf(np, sizeof(np), "%s/wg.key.new", dir);
	snprintf(kp, sizeof(kp), "%s/wg.key", dir);
	ret = ls_write_file_atomic(np, b64, strlen(b64), 0600);
	ls_memzero(b64, sizeof(b64));
	ls_memzero(priv, sizeof(priv));
	if (ret)
		return fail(err, errlen, ret, "cannot write %s: %s", np, strerror(-ret));
	ls_key_to_base64(pb, pub);
	ret = ls_ctl_rotate(c, pb, &resp, &e);
	ls_ctl_response_free(&resp);
	if (ret) {
		unlink(np);
		return fail(err, errlen, ret, "the control plane refused the rotation: %s (%s)", e.message,
			    e.code);
	}
	if (rename(np, kp) < 0) {
		ret = -errno;
		return fail(err, errlen, ret, "the server has the new key but %s could not replace %s: %s",
			    np, kp, strerror(errno));
	}
	if (pub_out)
		snprintf(pub_out, LS_KEY_B64_LEN + 1, "%s", pb);
	pr_info("rotated the WireGuard key: new public key %s", pb);
	return 0;
}

int ls_trust_rotate_if_due(struct ls_ctl *c, const char *dir, const json_t *doc)
{
	static uint64_t last_ms;
	static int64_t lifetime; /* the network's key lifetime (deltas carry it only when it moves) */
	static int64_t expiry;   /* self.key_expiry as last seen ("unchanged" answers lack it) */
	json_t *self = json_object_get(doc, "self");
	json_t *lt = json_object_get(json_object_get(doc, "network"), "key_lifetime");
	int64_t before = LS_TRUST_ROTATE_BEFORE, gap = 60000;
	char err[512];
	int ret;

	if (json_is_object(json_object_get(doc, "network")))
		lifetime = json_is_integer(lt) ? json_integer_value(lt) : 0;
	if (json_is_object(self)) {
		json_t *exp = json_object_get(self, "key_expiry");

		expiry = json_is_integer(exp) ? json_integer_value(exp) : 0;
	}
	/* a third of a short lifetime, an hour at most; retries at most every eighth */
	if (lifetime > 0 && lifetime / 3 < before)
		before = lifetime / 3;
	if (lifetime > 0 && lifetime * 1000 / 8 < gap)
		gap = lifetime * 1000 / 8 > 5000 ? lifetime * 1000 / 8 : 5000;
	if (!expiry || expiry - ls_unix_time() > before)
		return 0;
	if (last_ms && ls_now_ms() - last_ms < (uint64_t)gap)
		return 0;
	last_ms = ls_now_ms();
	pr_info("the WireGuard key expires in %lld s: rotating it", (long long)(expiry - ls_unix_time()));
	ret = ls_trust_rotate(c, dir, NULL, err, sizeof(err));
	if (ret) {
		pr_err("key rotation: %s", err);
		return ret;
	}
	return 1;
}

int ls_trust_follow_key(const char *dir, uint8_t wg_priv[32], uint8_t wg_pub[32], const json_t *doc)
{
	static const char *const files[] = { "wg.key", "wg.key.new" };
	const char *want = json_string_value(json_object_get(json_object_get(doc, "self"), "wg_key"));
	char cur[LS_KEY_B64_LEN + 1];
	size_t i;

	if (!want)
		return 0;
	ls_key_to_base64(cur, wg_pub);
	if (!strcmp(cur, want))
		return 0;
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		uint8_t priv[32], pub[32];
		char pb[LS_KEY_B64_LEN + 1];

		if (read_wg_key(dir, files[i], priv))
			continue;
		ls_wg_pubkey(pub, priv);
		ls_key_to_base64(pb, pub);
		if (!strcmp(pb, want)) {
			memcpy(wg_priv, priv, 32);
			memcpy(wg_pub, pub, 32);
			ls_memzero(priv, sizeof(priv));
			pr_info("following the rotated WireGuard key %s", pb);
			return 1;
		}
		ls_memzero(priv, sizeof(priv));
	}
	pr_warn("the control plane has WireGuard key %s for this node, which is not in %s/wg.key", want, dir);
	return 0;
}

int ls_trust_pins(const char *dir, const char *identity, char *out, size_t size)
{
	json_t *st = load_state(dir), *pv;
	const char *sid = json_string_value(json_object_get(st, "identity"));
	uint8_t pk[32];
	size_t k;
	int n = 0;

	if (size)
		out[0] = '\0';
	if (!sid || !identity || strcmp(sid, identity) || ls_key_from_base64(pk, sid)) {
		json_decref(st);
		return 0;
	}
	/* checked again: trust.json is a file, the identity is the trust */
	json_array_foreach(json_object_get(st, "pins"), k, pv) {
		const char *pin = json_string_value(json_object_get(pv, "pin"));
		const char *sig = json_string_value(json_object_get(pv, "sig"));
		json_int_t na = json_integer_value(json_object_get(pv, "not_after"));
		uint8_t sb[64];

		if (!pin || !sig || ls_b64_decode(sb, sizeof(sb), sig) != 64 || na < ls_unix_time() ||
		    !ls_tls_endorsement_valid(sb, pin, (uint64_t)na, pk))
			continue;
		if (strlen(out) + strlen(pin) + 2 > size)
			break;
		snprintf(out + strlen(out), size - strlen(out), "%s%s", out[0] ? ";" : "", pin);
		n++;
	}
	json_decref(st);
	return n;
}

static void hex32(char out[65], const uint8_t h[32])
{
	ls_hex_encode(out, h, 32);
}

int ls_trust_check_netmap(struct ls_ctl *c, const char *dir, const json_t *doc, char *err,
			  size_t errlen)
{
	struct ls_audit_head head = { 0 }, old = { 0 };
	struct ls_audit_entry *ents = NULL;
	json_t *st, *jh, *keys, *entries = NULL, *v;
	const char *ident, *sid;
	uint8_t pk[32];
	char hx[65];
	bool have_old;
	size_t i, n = 0;
	int ret = 0;

	if (json_is_true(json_object_get(doc, "unchanged")))
		return 0;
	st = load_state(dir);
	keys = json_object_get(st, "keys");
	sid = json_string_value(json_object_get(st, "identity"));
	jh = json_object_get(doc, "audit");
	if (!jh && sid && json_is_false(json_object_get(doc, "full")) &&
	    json_is_object(json_object_get(st, "head")) && !ls_key_from_base64(pk, sid)) {
		/* a delta carries the audit head only when it moved since the version this node
		 * holds: the head seen before stands, and so do the keys it gave and the pins (a
		 * new peer comes with a register entry, hence with a new head) */
		ident = sid;
		goto peers;
	}
	if (!jh) {
		if (sid)
			ret = fail(err, errlen, -EPERM,
				   "the netmap has no signed audit head, but this node trusts identity %s",
				   sid);
		goto out; /* a server without an audit log, never seen one: nothing to check */
	}
	ident = json_string_value(json_object_get(jh, "identity"));
	if (ls_audit_head_from_json(jh, &head) || !ident || ls_key_from_base64(pk, ident)) {
		ret = fail(err, errlen, -EPERM, "the netmap's audit head is malformed");
		goto out;
	}
	if (sid && strcmp(sid, ident)) {
		ret = fail(err, errlen, -EPERM,
			   "the audit head is signed by identity %s, but this node trusts %s", ident, sid);
		goto out;
	}
	if (!ls_audit_verify_head(&head, pk)) {
		ret = fail(err, errlen, -EPERM, "the audit head (entry %" PRIu64 ") is not signed by identity %s",
			   head.seq, ident);
		goto out;
	}
	have_old = json_is_object(json_object_get(st, "head")) &&
		   !ls_audit_head_from_json(json_object_get(st, "head"), &old);
	if (have_old && head.seq < old.seq) {
		ret = fail(err, errlen, -EPERM,
			   "the audit log was rolled back: head %" PRIu64 " is older than %" PRIu64
			   " seen before",
			   head.seq, old.seq);
		goto out;
	}
	if (have_old && head.seq == old.seq) {
		if (memcmp(head.hash, old.hash, sizeof(head.hash))) {
			hex32(hx, head.hash);
			ret = fail(err, errlen, -EPERM,
				   "the audit log forked: entry %" PRIu64 " has hash %s, not the one seen before",
				   head.seq, hx);
			goto out;
		}
	} else {
		uint8_t zero[LS_AUDIT_HASH_LEN] = { 0 };
		long bad;

		ret = fetch_entries(c, have_old ? old.seq : 0, head.seq, &entries, err, errlen);
		if (ret)
			goto out;
		n = json_array_size(entries);
		ents = calloc(n + 1, sizeof(*ents));
		if (!ents) {
			ret = -ENOMEM;
			goto out;
		}
		json_array_foreach(entries, i, v) {
			ents[i].seq = (uint64_t)json_integer_value(json_object_get(v, "seq"));
			ents[i].time = json_integer_value(json_object_get(v, "time"));
			ents[i].type = json_string_value(json_object_get(v, "type"));
			ents[i].data = json_string_value(json_object_get(v, "data"));
			if (!ents[i].type || !ents[i].data ||
			    ls_hex_decode(ents[i].hash, sizeof(ents[i].hash),
					  json_string_value(json_object_get(v, "hash"))) != LS_AUDIT_HASH_LEN) {
				ret = fail(err, errlen, -EPERM, "audit entry %" PRIu64 " is malformed", ents[i].seq);
				goto out;
			}
		}
		if (have_old) {
			if (!ls_audit_extends(&old, &head, ents, n)) {
				ret = fail(err, errlen, -EPERM,
					   "the audit log does not extend the head seen before (entry %" PRIu64
					   "): rolled back or forked",
					   old.seq);
				goto out;
			}
		} else {
			bad = ls_audit_verify_chain(ents, n, zero);
			if (bad >= 0 || !n || memcmp(ents[n - 1].hash, head.hash, sizeof(head.hash))) {
				ret = fail(err, errlen, -EPERM,
					   "the audit log does not verify (entry %" PRIu64 ")",
					   bad >= 0 ? ents[bad].seq : head.seq);
				goto out;
			}
		}
		/* the keys the log gives every node */
		for (i = 0; i < n; i++) {
			json_t *d;
			const char *k;
			char id[24];

			if (strcmp(ents[i].type, "register") && strcmp(ents[i].type, "rotate"))
				continue;
			d = json_loads(ents[i].data, 0, NULL);
			k = json_string_value(json_object_get(d, "wg_key"));
			if (k && json_is_integer(json_object_get(d, "node"))) {
				snprintf(id, sizeof(id), "%" JSON_INTEGER_FORMAT,
					 json_integer_value(json_object_get(d, "node")));
				json_object_set_new(keys, id, json_string(k));
			}
			json_decref(d);
		}
	}
peers:
	/* every peer's key must be the one the log records */
	json_array_foreach(json_object_get(doc, "peers"), i, v) {
		char id[24];
		const char *k = json_string_value(json_object_get(v, "wg_key"));
		const char *logged;

		snprintf(id, sizeof(id), "%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(v, "id")));
		logged = json_string_value(json_object_get(keys, id));
		if (!k || !logged || strcmp(k, logged)) {
			ret = fail(err, errlen, -EPERM,
				   "peer %s (%s) has WireGuard key %s, which is not in the audit log%s%s",
				   id, json_string_value(json_object_get(v, "name")), k ? k : "?",
				   logged ? "; the log says " : "", logged ? logged : "");
			goto out;
		}
	}
	if (!jh && !json_is_object(json_object_get(doc, "control"))) {
		/* a delta with neither: nothing new to remember */
		ls_ctl_set_identity(c, pk);
		goto out;
	}
	/* the servers' TLS keys endorsed by the identity: pin them from now on, on every
	 * connection of this process (ls_ctl_follow_pins: the heartbeat's too), and remember
	 * them (trust.json; ls_trust_pins); a map without a control section (a delta: it did
	 * not change) keeps the pins followed so far */
	if (json_is_object(json_object_get(doc, "control"))) {
		json_t *ctl = json_object_get(doc, "control"), *pv, *pins = json_array();
		char list[LS_CTL_PINS_MAX] = "";
		size_t k;

		json_array_foreach(json_object_get(ctl, "pins"), k, pv) {
			const char *pin = json_string_value(json_object_get(pv, "pin"));
			const char *sig = json_string_value(json_object_get(pv, "sig"));
			json_int_t na = json_integer_value(json_object_get(pv, "not_after"));
			uint8_t sb[64];

			if (!pin || !sig || ls_b64_decode(sb, sizeof(sb), sig) != 64 || na < ls_unix_time() ||
			    !ls_tls_endorsement_valid(sb, pin, (uint64_t)na, pk)) {
				pr_warn("ignoring TLS pin %s: not endorsed by identity %s", pin ? pin : "?", ident);
				continue;
			}
			json_array_append_new(pins, json_pack("{s:s, s:I, s:s}", "pin", pin, "not_after", na,
							      "sig", sig));
			if (strlen(list) + strlen(pin) + 2 < sizeof(list))
				snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
					 list[0] ? ";" : "", pin);
		}
		if (list[0]) {
			const char *prev = json_string_value(json_object_get(st, "pin_list"));

			if (prev && strcmp(prev, list))
				pr_info("following the TLS pins the deployment endorses now: %s", list);
			ls_ctl_set_pinned_keys(c, list);
			ls_ctl_follow_pins(pk, list);
			json_object_set_new(st, "pins", pins);
			json_object_set_new(st, "pin_list", json_string(list));
		} else {
			json_decref(pins);
		}
	}
	/* netmaps from now on must be signed by the identity (ls_ctl_netmap checks) */
	ls_ctl_set_identity(c, pk);
	json_object_set_new(st, "identity", json_string(ident));
	if (jh) /* a delta without an audit head keeps the head seen before */
		json_object_set_new(st, "head", ls_audit_head_to_json(&head));
	ret = save_state(dir, st);
	if (ret)
		fail(err, errlen, ret, "cannot save %s/" TRUST_FILE ": %s", dir, strerror(-ret));
out:
	free(ents);
	json_decref(entries);
	json_decref(st);
	return ret;
}
