/*
 * csdk exercises the C SDK's HTTP and file calls (sdk/c/blockhost.h). Its
 * input is a URL: it GETs it with a header, and writes
 * "STATUS BODY" to /data/out.txt through mkdir, write, append, rename,
 * stat, list and read; the output is what it read back and the listing.
 * A failed call ends the step with the host's detail (bh_fail_with).
 */
#include "../../sdk/c/blockhost.h"

static int failed_http(const char *doing) {
	bh_detail d;
	bh_http_last_error(&d);
	bh_fail_with(&d, doing);
	return 0;
}

static int failed_fs(const char *doing) {
	bh_detail d;
	bh_fs_last_error(&d);
	bh_fail_with(&d, doing);
	return 0;
}

int main(void) {
	char *url;
	size_t len;
	if (bh_input(&url, &len) != BH_OK) return 1;

	const char *headers[] = {"X-Test", "c \"sdk\"", NULL};
	bh_http_request req = {.method = "GET", .url = url, .headers = headers};
	bh_http_response resp;
	if (bh_http_do(&req, &resp) != BH_OK) return failed_http("GET");
	bh_buf body = {0};
	if (bh_http_read_all(&resp, &body) != BH_OK) return failed_http("reading the body");
	bh_http_close(&resp);

	char status[16];
	snprintf(status, sizeof status, "%d ", resp.status);
	if (bh_fs_mkdir("/data/tmp") != BH_OK) return failed_fs("mkdir");
	if (bh_fs_write("/data/tmp/x.txt", status, strlen(status), BH_FS_EXCLUSIVE) != BH_OK) return failed_fs("write");
	if (bh_fs_append("/data/tmp/x.txt", body.p, body.len) != BH_OK) return failed_fs("append");
	if (bh_fs_rename("/data/tmp/x.txt", "/data/out.txt") != BH_OK) return failed_fs("rename");
	if (bh_fs_remove("/data/tmp") != BH_OK) return failed_fs("remove");
	bh_stat st;
	if (bh_fs_stat("/data/out.txt", &st) != BH_OK || st.kind != BH_KIND_FILE) return failed_fs("stat");

	bh_buf back = {0}, list = {0};
	if (bh_fs_read_file("/data/out.txt", &back) != BH_OK || back.len != st.size) return failed_fs("read");
	if (bh_fs_list("/data", &list) != BH_OK) return failed_fs("list");
	bh_buf out = {0};
	bh_buf_append(&out, back.p, back.len);
	for (size_t i = 0; i < list.len; i += strlen(list.p + i + 1) + 2) {
		bh_buf_str(&out, "|");
		bh_buf_str(&out, list.p + i + 1);
	}
	bh_output(out.p, out.len);
	/* A denied write reports the host's detail. */
	if (bh_fs_write("/elsewhere/x", "x", 1, 0) != BH_DENIED) return failed_fs("write outside the grant was not denied");
	return failed_fs("write outside");
}
