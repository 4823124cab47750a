/*
 * blockhost.h — the blockhost C SDK, header only (ABI v1, docs/abi.md).
 *
 * Include it in the C file that has main() and build a WASI command:
 *
 *   clang --target=wasm32-wasi -O2 -Wl,-z,stack-size=1048576 -o block.wasm main.c
 *
 * Including it makes the module an ABI v1 block: it exports the version
 * marker blockhost_abi_v1 and imports the host functions of module
 * "blockhost". A block reads its input with bh_input, writes its output with
 * bh_output, fails with bh_error, logs with bh_log, and uses the HTTP and
 * filesystem capabilities with bh_http_* and bh_fs_*, and the databases
 * granted to the step with bh_sql_* — no JSON to write by hand but a
 * statement's parameters. Every function returns a bh_result (BH_OK on success), the host's
 * result code of docs/abi.md §5.
 *
 * wasm-ld gives a module 64 KiB of stack by default; a block with large
 * local arrays or deep recursion overflows it and traps. Raise it with
 * -Wl,-z,stack-size=N (the example above asks for 1 MiB).
 *
 * The functions are static: include the header in one C file, or in
 * several, at the cost of a copy in each.
 */
#ifndef BLOCKHOST_H
#define BLOCKHOST_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Result codes (docs/abi.md §5) ---- */

typedef uint32_t bh_result;

enum {
	BH_OK = 0,
	BH_INVALID = 1,     /* bad arguments */
	BH_DENIED = 2,      /* no grant allows it */
	BH_NOT_FOUND = 3,   /* the named thing does not exist */
	BH_EXISTS = 4,      /* the named thing already exists */
	BH_LIMIT = 5,       /* a size, count or rate cap was reached */
	BH_TIMEOUT = 6,     /* the step's deadline has passed */
	BH_CANCELLED = 7,   /* the step was cancelled */
	BH_UNAVAILABLE = 8, /* a dependency is unavailable now */
	BH_IO = 9,          /* an input/output failure; also any unknown value */
	BH_NOMEM = 100      /* the SDK's own: malloc failed (never from the host) */
};

/* ---- Error codes and classes (docs/abi.md §6) ---- */

enum {
	BH_CODE_INVALID_INPUT = 1001,
	BH_CODE_MISSING_REQUIRED_FIELD = 1002,
	BH_CODE_INVALID_FORMAT = 1003,
	BH_CODE_EXECUTION_FAILED = 2001,
	BH_CODE_RESOURCE_UNAVAILABLE = 2002,
	BH_CODE_PERMISSION_DENIED = 2003,
	BH_CODE_QUOTA_EXCEEDED = 2004,
	BH_CODE_NETWORK_ERROR = 3001,
	BH_CODE_CONNECTION_TIMEOUT = 3002,
	BH_CODE_HTTP_ERROR = 3003,
	BH_CODE_INTERNAL_ERROR = 4001,
	BH_CODE_SYSTEM_OVERLOAD = 4002
};

enum { BH_PERMANENT = 0, BH_RETRYABLE = 1 };

enum { BH_TRACE = 1, BH_DEBUG = 2, BH_INFO = 3, BH_WARN = 4, BH_ERROR = 5 };

/* ---- Host functions (docs/abi.md §4, §8, §9) ---- */

#define BH_IMPORT_(name) __attribute__((import_module("blockhost"), import_name(#name)))

BH_IMPORT_(input_len) bh_result bh_host_input_len(uint32_t *len);
BH_IMPORT_(input_read) bh_result bh_host_input_read(void *buf, uint32_t buf_len, uint32_t *n);
BH_IMPORT_(output_write) bh_result bh_host_output_write(const void *p, uint32_t len);
BH_IMPORT_(error_set) bh_result bh_host_error_set(uint32_t code, uint32_t cls, const char *msg, uint32_t msg_len);
BH_IMPORT_(log) bh_result bh_host_log(uint32_t level, const char *msg, uint32_t msg_len, const char *kv, uint32_t kv_len);
BH_IMPORT_(deadline) bh_result bh_host_deadline(int64_t *ns);
BH_IMPORT_(check) bh_result bh_host_check(void);

BH_IMPORT_(http_request) bh_result bh_host_http_request(const char *head, uint32_t head_len, const void *body, uint32_t body_len, uint32_t resp[2]);
BH_IMPORT_(http_response_head) bh_result bh_host_http_response_head(uint32_t handle, char *buf, uint32_t buf_len, uint32_t *n);
BH_IMPORT_(http_body_read) bh_result bh_host_http_body_read(uint32_t handle, void *buf, uint32_t buf_len, uint32_t *n);
BH_IMPORT_(http_close) bh_result bh_host_http_close(uint32_t handle);
BH_IMPORT_(http_last_error) bh_result bh_host_http_last_error(char *buf, uint32_t buf_len, uint32_t *n);

BH_IMPORT_(fs_read) bh_result bh_host_fs_read(const char *path, uint32_t path_len, int64_t off, void *buf, uint32_t buf_len, uint32_t *n);
BH_IMPORT_(fs_write) bh_result bh_host_fs_write(const char *path, uint32_t path_len, const void *data, uint32_t data_len, uint32_t flags);
BH_IMPORT_(fs_append) bh_result bh_host_fs_append(const char *path, uint32_t path_len, const void *data, uint32_t data_len);
BH_IMPORT_(fs_stat) bh_result bh_host_fs_stat(const char *path, uint32_t path_len, uint8_t stat[24]);
BH_IMPORT_(fs_list) bh_result bh_host_fs_list(const char *path, uint32_t path_len, char *buf, uint32_t buf_len, uint32_t *n);
BH_IMPORT_(fs_remove) bh_result bh_host_fs_remove(const char *path, uint32_t path_len);
BH_IMPORT_(fs_mkdir) bh_result bh_host_fs_mkdir(const char *path, uint32_t path_len);
BH_IMPORT_(fs_rename) bh_result bh_host_fs_rename(const char *from, uint32_t from_len, const char *to, uint32_t to_len);
BH_IMPORT_(fs_last_error) bh_result bh_host_fs_last_error(char *buf, uint32_t buf_len, uint32_t *n);

BH_IMPORT_(sql_query) bh_result bh_host_sql_query(const char *req, uint32_t req_len, uint32_t *n);
BH_IMPORT_(sql_result) bh_result bh_host_sql_result(char *buf, uint32_t buf_len, uint32_t *n);
BH_IMPORT_(sql_exec) bh_result bh_host_sql_exec(const char *req, uint32_t req_len, int64_t *affected);
BH_IMPORT_(sql_last_error) bh_result bh_host_sql_last_error(char *buf, uint32_t buf_len, uint32_t *n);

#undef BH_IMPORT_

/*
 * The version marker (docs/abi.md §3). The host never calls it; it reads
 * the export's name. Weak, so that including the header in several files
 * links.
 */
__attribute__((export_name("blockhost_abi_v1"), weak)) void blockhost_abi_v1(void) {}

/* ---- Growable buffer ---- */

/* bh_buf is a growable byte buffer, always NUL-terminated when p != NULL. */
typedef struct {
	char *p;
	size_t len, cap;
	int oom; /* set when an append could not allocate; later appends do nothing */
} bh_buf;

static inline void bh_buf_free(bh_buf *b) {
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

static inline void bh_buf_append(bh_buf *b, const void *p, size_t n) {
	if (b->oom) return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		while (cap < b->len + n + 1) cap *= 2;
		char *q = (char *)realloc(b->p, cap);
		if (!q) {
			b->oom = 1;
			return;
		}
		b->p = q;
		b->cap = cap;
	}
	if (n) memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = 0;
}

static inline void bh_buf_str(bh_buf *b, const char *s) { bh_buf_append(b, s, strlen(s)); }

/* bh_buf_json_string appends s as a JSON string, quotes included. */
static inline void bh_buf_json_string(bh_buf *b, const char *s) {
	static const char hex[] = "0123456789abcdef";
	bh_buf_append(b, "\"", 1);
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		switch (*c) {
		case '"': bh_buf_append(b, "\\\"", 2); break;
		case '\\': bh_buf_append(b, "\\\\", 2); break;
		case '\n': bh_buf_append(b, "\\n", 2); break;
		case '\r': bh_buf_append(b, "\\r", 2); break;
		case '\t': bh_buf_append(b, "\\t", 2); break;
		default:
			if (*c < 0x20) {
				char u[6] = {'\\', 'u', '0', '0', hex[*c >> 4], hex[*c & 15]};
				bh_buf_append(b, u, 6);
			} else {
				bh_buf_append(b, c, 1);
			}
		}
	}
	bh_buf_append(b, "\"", 1);
}

/* ---- Input, output, errors ---- */

/*
 * bh_input reads the step's whole input into a new buffer (NUL-terminated,
 * so text input is a C string) and its length. Free *buf with free().
 */
static inline bh_result bh_input(char **buf, size_t *len) {
	uint32_t n = 0, got = 0;
	bh_result r = bh_host_input_len(&n);
	if (r != BH_OK) return r;
	char *p = (char *)malloc((size_t)n + 1);
	if (!p) return BH_NOMEM;
	if (n > 0 && (r = bh_host_input_read(p, n, &got)) != BH_OK) {
		free(p);
		return r;
	}
	p[n] = 0;
	*buf = p;
	*len = n;
	return BH_OK;
}

/* bh_output appends n bytes to the step's output; BH_LIMIT over the cap. */
static inline bh_result bh_output(const void *p, size_t n) { return bh_host_output_write(p, (uint32_t)n); }

/* bh_output_str appends a C string to the step's output. */
static inline bh_result bh_output_str(const char *s) { return bh_output(s, strlen(s)); }

/*
 * bh_error records that the step failed with code (BH_CODE_*), class
 * (BH_PERMANENT or BH_RETRYABLE) and a UTF-8 message. The step ends as
 * error once main returns.
 */
static inline bh_result bh_error(uint32_t code, uint32_t cls, const char *msg) {
	return bh_host_error_set(code, cls, msg, (uint32_t)strlen(msg));
}

/* bh_errorf is bh_error with a printf format; the message is cut at 4096 bytes. */
__attribute__((format(printf, 3, 4))) static inline bh_result bh_errorf(uint32_t code, uint32_t cls, const char *format, ...) {
	char msg[4097];
	va_list ap;
	va_start(ap, format);
	vsnprintf(msg, sizeof msg, format, ap);
	va_end(ap);
	return bh_error(code, cls, msg);
}

/* ---- Logs ---- */

/*
 * bh_log writes a log record at level (BH_TRACE … BH_ERROR): a message,
 * then key and value strings, ended by NULL:
 *
 *   bh_log(BH_INFO, "greeting", "name", name, NULL);
 */
static inline bh_result bh_log(uint32_t level, const char *msg, ...) {
	bh_buf kv = {0};
	va_list ap;
	va_start(ap, msg);
	for (const char *s; (s = va_arg(ap, const char *)) != NULL;) bh_buf_append(&kv, s, strlen(s) + 1);
	va_end(ap);
	bh_result r = kv.oom ? BH_NOMEM : bh_host_log(level, msg, (uint32_t)strlen(msg), kv.p, (uint32_t)kv.len);
	bh_buf_free(&kv);
	return r;
}

/* ---- Deadline ---- */

/* bh_deadline_ns writes the nanoseconds left before the deadline, or -1 for none. */
static inline bh_result bh_deadline_ns(int64_t *ns) { return bh_host_deadline(ns); }

/* bh_check returns BH_OK while the step runs, BH_TIMEOUT or BH_CANCELLED once it is over. */
static inline bh_result bh_check(void) { return bh_host_check(); }

/* ---- Failure details (docs/abi.md §8.5, §9.4) ---- */

/* bh_detail is the detail of the last failed http_* or fs_* call. */
typedef struct {
	uint32_t code;     /* BH_CODE_*, 0 when there is no detail */
	uint32_t cls;      /* BH_PERMANENT or BH_RETRYABLE */
	char message[512]; /* the host's message, cut to fit */
} bh_detail;

/* bh_json_find_ returns the text after "key": in a flat JSON object, or NULL. */
static inline const char *bh_json_find_(const char *json, const char *key) {
	size_t k = strlen(key);
	for (const char *p = json; (p = strchr(p, '"')) != NULL; p++) {
		if (strncmp(p + 1, key, k) == 0 && p[k + 1] == '"') {
			const char *q = p + k + 2;
			while (*q == ' ') q++;
			if (*q == ':') {
				q++;
				while (*q == ' ') q++;
				return q;
			}
		}
	}
	return NULL;
}

/* bh_parse_detail_ reads code, class and message from the host's detail JSON. */
static inline void bh_parse_detail_(const char *json, bh_detail *d) {
	const char *v;
	memset(d, 0, sizeof *d);
	if ((v = bh_json_find_(json, "code")) != NULL) d->code = (uint32_t)strtoul(v, NULL, 10);
	if ((v = bh_json_find_(json, "class")) != NULL) d->cls = strncmp(v, "\"retryable\"", 11) == 0 ? BH_RETRYABLE : BH_PERMANENT;
	if ((v = bh_json_find_(json, "message")) != NULL && *v == '"') {
		size_t i = 0;
		for (v++; *v && *v != '"' && i + 1 < sizeof d->message; v++) {
			if (*v == '\\' && v[1]) v++; /* keep the escaped character itself */
			d->message[i++] = *v;
		}
		d->message[i] = 0;
	}
}

typedef bh_result (*bh_detail_fn_)(char *, uint32_t, uint32_t *);

static inline bh_result bh_last_error_(bh_detail_fn_ fn, bh_detail *d) {
	uint32_t n = 0;
	memset(d, 0, sizeof *d);
	bh_result r = fn(NULL, 0, &n);
	if (r != BH_LIMIT && r != BH_OK) return r;
	char *json = (char *)malloc((size_t)n + 1);
	if (!json) return BH_NOMEM;
	if ((r = fn(json, n, &n)) == BH_OK) {
		json[n] = 0;
		bh_parse_detail_(json, d);
	}
	free(json);
	return r;
}

/* bh_http_last_error gets the detail of the step's last failed bh_http_* call. */
static inline bh_result bh_http_last_error(bh_detail *d) { return bh_last_error_(bh_host_http_last_error, d); }

/* bh_fs_last_error gets the detail of the step's last failed bh_fs_* call. */
static inline bh_result bh_fs_last_error(bh_detail *d) { return bh_last_error_(bh_host_fs_last_error, d); }

/* bh_sql_last_error gets the detail of the step's last failed bh_sql_* call. */
static inline bh_result bh_sql_last_error(bh_detail *d) { return bh_last_error_(bh_host_sql_last_error, d); }

/*
 * bh_fail_with records d as the step's error, prefixed by what the block
 * was doing: a block that gives up on a request or a file fails the step
 * with the host's code and class.
 */
static inline bh_result bh_fail_with(const bh_detail *d, const char *doing) {
	if (d->code == 0) return bh_errorf(BH_CODE_EXECUTION_FAILED, BH_PERMANENT, "%s failed", doing);
	return bh_errorf(d->code, d->cls, "%s: %s", doing, d->message);
}

/* ---- HTTP (docs/abi.md §8) ---- */

/* bh_http_request is one request; zero fields take the defaults. */
typedef struct {
	const char *method;        /* NULL: GET */
	const char *url;           /* required: an absolute http or https URL */
	const char *const *headers; /* NULL, or name, value, name, value, …, NULL */
	const void *body;          /* NULL: no body */
	size_t body_len;
	int64_t max_response_body; /* 0: the grant's cap */
	uint32_t total_ms;         /* 0: the grant's timeout; otherwise shortens it */
} bh_http_request;

/* bh_http_response is a response whose head has arrived. */
typedef struct {
	uint32_t handle;
	int status;  /* the HTTP status */
	char *head;  /* the response head as JSON (docs/abi.md §8.3), NUL-terminated */
	size_t head_len;
} bh_http_response;

/*
 * bh_http_do sends req and waits for the response's head. A response of
 * any status is BH_OK (check resp->status); a request that failed returns
 * the host's result, and bh_http_last_error says why. Read the body with
 * bh_http_read and always call bh_http_close.
 */
static inline bh_result bh_http_do(const bh_http_request *req, bh_http_response *resp) {
	bh_buf h = {0};
	memset(resp, 0, sizeof *resp);
	bh_buf_str(&h, "{\"method\":");
	bh_buf_json_string(&h, req->method ? req->method : "GET");
	bh_buf_str(&h, ",\"url\":");
	bh_buf_json_string(&h, req->url ? req->url : "");
	if (req->headers && req->headers[0]) {
		bh_buf_str(&h, ",\"headers\":{");
		for (const char *const *kv = req->headers; kv[0] && kv[1]; kv += 2) {
			if (kv != req->headers) bh_buf_str(&h, ",");
			bh_buf_json_string(&h, kv[0]);
			bh_buf_str(&h, ":[");
			bh_buf_json_string(&h, kv[1]);
			bh_buf_str(&h, "]");
		}
		bh_buf_str(&h, "}");
	}
	char num[64];
	if (req->max_response_body > 0) {
		snprintf(num, sizeof num, ",\"max_response_body\":%lld", (long long)req->max_response_body);
		bh_buf_str(&h, num);
	}
	if (req->total_ms > 0) {
		snprintf(num, sizeof num, ",\"timeouts\":{\"total_ms\":%u}", (unsigned)req->total_ms);
		bh_buf_str(&h, num);
	}
	bh_buf_str(&h, "}");
	if (h.oom) {
		bh_buf_free(&h);
		return BH_NOMEM;
	}
	uint32_t out[2] = {0, 0};
	bh_result r = bh_host_http_request(h.p, (uint32_t)h.len, req->body, (uint32_t)req->body_len, out);
	bh_buf_free(&h);
	if (r != BH_OK) return r;
	resp->handle = out[0];
	resp->head = (char *)malloc((size_t)out[1] + 1);
	if (!resp->head) return BH_NOMEM;
	uint32_t n = 0;
	if ((r = bh_host_http_response_head(out[0], resp->head, out[1], &n)) != BH_OK) return r;
	resp->head[n] = 0;
	resp->head_len = n;
	const char *v = bh_json_find_(resp->head, "status"); /* the head's first field */
	resp->status = v ? atoi(v) : 0;
	return BH_OK;
}

/*
 * bh_http_read reads the next body bytes into buf; *n is 0 at the end.
 * BH_LIMIT means the body is longer than its cap (truncated).
 */
static inline bh_result bh_http_read(bh_http_response *resp, void *buf, size_t cap, size_t *n) {
	uint32_t got = 0;
	bh_result r = bh_host_http_body_read(resp->handle, buf, (uint32_t)(cap > 65536 ? 65536 : cap), &got);
	*n = got;
	return r;
}

/* bh_http_read_all reads the rest of the body into b. */
static inline bh_result bh_http_read_all(bh_http_response *resp, bh_buf *b) {
	char chunk[16384];
	for (;;) {
		size_t n = 0;
		bh_result r = bh_http_read(resp, chunk, sizeof chunk, &n);
		if (r != BH_OK) return r;
		if (n == 0) return b->oom ? BH_NOMEM : BH_OK;
		bh_buf_append(b, chunk, n);
	}
}

/*
 * bh_http_close releases the response and its connection, and frees its
 * head; resp->status stays.
 */
static inline bh_result bh_http_close(bh_http_response *resp) {
	bh_result r = resp->handle ? bh_host_http_close(resp->handle) : BH_OK;
	free(resp->head);
	resp->handle = 0;
	resp->head = NULL;
	resp->head_len = 0;
	return r;
}

/* ---- Files (docs/abi.md §9); paths are guest paths such as "/data/in.txt" ---- */

enum { BH_FS_EXCLUSIVE = 1 };
enum { BH_KIND_FILE = 0, BH_KIND_DIR = 1, BH_KIND_SYMLINK = 2, BH_KIND_OTHER = 3 };

typedef struct {
	uint64_t size;
	int64_t mtime_ns;
	uint32_t kind; /* BH_KIND_* */
	uint32_t mode; /* permission bits */
} bh_stat;

static inline bh_result bh_fs_stat(const char *path, bh_stat *st) {
	uint8_t b[24];
	bh_result r = bh_host_fs_stat(path, (uint32_t)strlen(path), b);
	if (r == BH_OK) {
		memcpy(&st->size, b, 8); /* wasm32 is little-endian, as the ABI */
		memcpy(&st->mtime_ns, b + 8, 8);
		memcpy(&st->kind, b + 16, 4);
		memcpy(&st->mode, b + 20, 4);
	}
	return r;
}

/* bh_fs_read reads up to cap bytes from off; *n < cap means the end was reached. */
static inline bh_result bh_fs_read(const char *path, int64_t off, void *buf, size_t cap, size_t *n) {
	uint32_t got = 0;
	bh_result r = bh_host_fs_read(path, (uint32_t)strlen(path), off, buf, (uint32_t)cap, &got);
	*n = got;
	return r;
}

/* bh_fs_read_file reads the whole file into b. */
static inline bh_result bh_fs_read_file(const char *path, bh_buf *b) {
	char chunk[16384];
	for (int64_t off = 0;;) {
		size_t n = 0;
		bh_result r = bh_fs_read(path, off, chunk, sizeof chunk, &n);
		if (r != BH_OK) return r;
		bh_buf_append(b, chunk, n);
		off += (int64_t)n;
		if (n < sizeof chunk) return b->oom ? BH_NOMEM : BH_OK;
	}
}

/* bh_fs_write replaces the file atomically; flags 0 or BH_FS_EXCLUSIVE. */
static inline bh_result bh_fs_write(const char *path, const void *data, size_t len, uint32_t flags) {
	return bh_host_fs_write(path, (uint32_t)strlen(path), data, (uint32_t)len, flags);
}

static inline bh_result bh_fs_append(const char *path, const void *data, size_t len) {
	return bh_host_fs_append(path, (uint32_t)strlen(path), data, (uint32_t)len);
}

static inline bh_result bh_fs_mkdir(const char *path) { return bh_host_fs_mkdir(path, (uint32_t)strlen(path)); }

static inline bh_result bh_fs_remove(const char *path) { return bh_host_fs_remove(path, (uint32_t)strlen(path)); }

static inline bh_result bh_fs_rename(const char *from, const char *to) {
	return bh_host_fs_rename(from, (uint32_t)strlen(from), to, (uint32_t)strlen(to));
}

/*
 * bh_fs_list lists a directory into b: for each entry, sorted by name, one
 * byte of kind (BH_KIND_*), the name, and a NUL. Walk it with
 *
 *   for (size_t i = 0; i < b.len; i += strlen(b.p + i + 1) + 2)
 *       kind = b.p[i], name = b.p + i + 1;
 */
static inline bh_result bh_fs_list(const char *path, bh_buf *b) {
	uint32_t n = 0, plen = (uint32_t)strlen(path);
	bh_result r = bh_host_fs_list(path, plen, NULL, 0, &n);
	if (r != BH_LIMIT && r != BH_OK) return r;
	b->len = 0;
	bh_buf_append(b, "", 0);
	if (n == 0) return b->oom ? BH_NOMEM : BH_OK;
	bh_buf_append(b, NULL, 0);
	if (b->oom) return BH_NOMEM;
	char *p = (char *)realloc(b->p, (size_t)n + 1);
	if (!p) return BH_NOMEM;
	b->p = p;
	b->cap = (size_t)n + 1;
	if ((r = bh_host_fs_list(path, plen, b->p, n, &n)) != BH_OK) return r;
	b->len = n;
	b->p[n] = 0;
	return BH_OK;
}

/* ---- SQL (docs/abi.md §10) ---- */

/*
 * bh_sql_request_ builds an SQLRequest: the database's name, one statement
 * and its parameters, a JSON array written by the caller (such as
 * "[\"ana\", 3]", with bh_buf_json_string for strings), or NULL for none.
 * Parameters reach the database as values, never as SQL text.
 */
static inline void bh_sql_request_(bh_buf *b, const char *db, const char *stmt, const char *params) {
	bh_buf_str(b, "{\"database\":");
	bh_buf_json_string(b, db);
	bh_buf_str(b, ",\"statement\":");
	bh_buf_json_string(b, stmt);
	if (params && params[0]) {
		bh_buf_str(b, ",\"params\":");
		bh_buf_str(b, params);
	}
	bh_buf_str(b, "}");
}

/*
 * bh_sql_query runs one statement that returns rows on the granted
 * database db and puts its result into b, as JSON:
 * {"columns": [...], "rows": [{...}, ...], "row_count": N}. A failure
 * returns the host's result, and bh_sql_last_error says why.
 */
static inline bh_result bh_sql_query(const char *db, const char *stmt, const char *params, bh_buf *b) {
	bh_buf req = {0};
	bh_sql_request_(&req, db, stmt, params);
	if (req.oom) {
		bh_buf_free(&req);
		return BH_NOMEM;
	}
	uint32_t n = 0;
	bh_result r = bh_host_sql_query(req.p, (uint32_t)req.len, &n);
	bh_buf_free(&req);
	if (r != BH_OK) return r;
	b->len = 0;
	bh_buf_append(b, NULL, 0);
	if (b->oom) return BH_NOMEM;
	char *p = (char *)realloc(b->p, (size_t)n + 1);
	if (!p) return BH_NOMEM;
	b->p = p;
	b->cap = (size_t)n + 1;
	if ((r = bh_host_sql_result(b->p, n, &n)) != BH_OK) return r;
	b->len = n;
	b->p[n] = 0;
	return BH_OK;
}

/*
 * bh_sql_exec runs one statement that returns no rows on the granted
 * database db and writes how many rows it changed at affected. Under a
 * read-only grant the database refuses any change: BH_DENIED.
 */
static inline bh_result bh_sql_exec(const char *db, const char *stmt, const char *params, int64_t *affected) {
	bh_buf req = {0};
	bh_sql_request_(&req, db, stmt, params);
	if (req.oom) {
		bh_buf_free(&req);
		return BH_NOMEM;
	}
	bh_result r = bh_host_sql_exec(req.p, (uint32_t)req.len, affected);
	bh_buf_free(&req);
	return r;
}

#ifdef __cplusplus
}
#endif

#endif /* BLOCKHOST_H */
