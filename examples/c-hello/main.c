/*
 * c-hello is hello written in C with the header-only C SDK
 * (sdk/c/blockhost.h). Its input is a name as plain text; its output is
 * {"greeting":"hello, NAME"}. Empty input ends the step as error,
 * missing_required_field, permanent. When the step is granted a directory
 * at /out (read-write), it also appends the greeting to /out/greetings.txt.
 */
#include "../../sdk/c/blockhost.h"

int main(void) {
	char *name = NULL;
	size_t len = 0;
	bh_result r = bh_input(&name, &len);
	if (r != BH_OK) {
		return 1; /* the step is over, or the host failed: the host decides the result */
	}
	if (len == 0) {
		bh_error(BH_CODE_MISSING_REQUIRED_FIELD, BH_PERMANENT, "input is empty: want a name");
		return 0;
	}
	bh_log(BH_INFO, "greeting", "name", name, NULL);

	bh_buf greeting = {0};
	bh_buf_str(&greeting, "hello, ");
	bh_buf_str(&greeting, name);

	bh_stat st;
	if (bh_fs_stat("/out", &st) == BH_OK) {
		bh_buf line = {0};
		bh_buf_str(&line, greeting.p);
		bh_buf_str(&line, "\n");
		if (bh_fs_append("/out/greetings.txt", line.p, line.len) != BH_OK) {
			bh_detail d;
			bh_fs_last_error(&d);
			bh_fail_with(&d, "appending to /out/greetings.txt");
			return 0;
		}
		bh_buf_free(&line);
	}

	bh_buf out = {0};
	bh_buf_str(&out, "{\"greeting\":");
	bh_buf_json_string(&out, greeting.p);
	bh_buf_str(&out, "}");
	bh_output(out.p, out.len);
	return 0;
}
