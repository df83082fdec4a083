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

struct sk_daemon;
struct sk_agent;

/* sk_route_sandbox_agent - the skiff-init agent of the running sandbox named
 * in the path ({id}, by id or name), for file operations; counts as activity.
 * With `path` non-NULL, also the required ?path= (at most path_max bytes).
 * *id (when non-NULL) gets the sandbox's id, freed by the caller. Answers the
 * request (400/404/409) and returns NULL when any of it is wrong. The agent is
 * borrowed for the current loop callback. */
struct sk_agent *sk_route_sandbox_agent(struct sk_daemon *d, struct sk_http_req *req, size_t path_max,
                                        const char **path, char **id);

/* sk_route_get_exec - the exec named in the path ({exec}), checked to belong
 * to the sandbox in the path ({id}); counts as activity. *e is the caller's to
 * release. Answers 404 and returns -1 otherwise. */
int sk_route_get_exec(struct sk_daemon *d, struct sk_http_req *req, struct sk_exec_rec *e);

/* sk_json_string_lossy - a JSON string of `len` bytes, invalid UTF-8
 * sequences replaced by U+FFFD (new reference). */
json_t *sk_json_string_lossy(const char *data, size_t len);

#endif
