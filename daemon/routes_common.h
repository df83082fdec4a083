/* routes_common.h - helpers shared by the sandbox, exec and file routes. */
#ifndef SK_DAEMON_ROUTES_COMMON_H
#define SK_DAEMON_ROUTES_COMMON_H

#include <jansson.h>
#include <stddef.h>

#include "request.h"
#include "store/store.h"

/* sk_sandbox_json - the API view of a sandbox record (new reference). */
json_t *sk_sandbox_json(const struct sk_sandbox_rec *r);

/* sk_strv_from_json - a NULL-terminated vector borrowing the strings of a
 * (decoder-checked) JSON array of strings; free() the vector only. NULL in,
 * NULL out. */
const char **sk_strv_from_json(const json_t *arr);

/* sk_env_from_json - "K=V" strings from a JSON object of strings, freed
 * with sk_env_free. Answers 400 and returns NULL for an invalid name. */
char **sk_env_from_json(struct sk_http_req *req, const json_t *obj);
void sk_env_free(char **env);

/* sk_json_string_lossy - a JSON string of `len` bytes, invalid UTF-8
 * sequences replaced by U+FFFD (new reference). */
json_t *sk_json_string_lossy(const char *data, size_t len);

#endif
