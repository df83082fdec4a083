/* skiffd: the API server's foundation, driven through real HTTP against the
 * real build/skiffd - auth, errors, limits, tokens, metrics, restart,
 * streaming, long polls, body sinks and the graceful stop.
 *
 * The HTTP client is a few plain sockets on purpose: it lets the tests send
 * what a hostile or broken client sends (idle connections, chunked bodies
 * that never end, hang-ups mid-stream). */
#include "skiffd_test.h"

/* ---- tests ------------------------------------------------------------------------ */

TEST(healthz_answers_without_a_token)
{
    struct skiffd s;
    make_data_dir(&s);
    skiffd_start(&s);
    struct resp r;
    request(&s, "GET", "/healthz", NULL, NULL, &r);
    ASSERT_EQ_INT(r.status, 200);
    ASSERT_EQ_STR(json_string_value(json_object_get(r.json, "status")), "ok");
    resp_free(&r);
    skiffd_finish(&s);
}

TEST(version_names_api_and_schema)
{
    struct skiffd s;
    make_data_dir(&s);
    skiffd_start(&s);
    struct resp r;
    request(&s, "GET", "/v1/version", s.token, NULL, &r);
    ASSERT_EQ_INT(r.status, 200);
    ASSERT_EQ_STR(json_string_value(json_object_get(r.json, "version")), "0.1.0");
    ASSERT_EQ_STR(json_string_value(json_object_get(r.json, "api")), "v1");
    ASSERT_TRUE(json_is_integer(json_object_get(r.json, "schema")));
    ASSERT_GE_INT(json_integer_value(json_object_get(r.json, "schema")), 1);
    resp_free(&r);
    skiffd_finish(&s);
}

TEST(admin_token_file_is_private_and_works)
{
    struct skiffd s;
    make_data_dir(&s);
    skiffd_start(&s);
    struct stat st;
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/admin.token", s.dir);
    ASSERT_EQ_INT(lstat(path, &st), 0);
    ASSERT_TRUE(S_ISREG(st.st_mode));
    ASSERT_EQ_INT(st.st_mode & 0777, 0600);
    ASSERT_EQ_INT(stat(s.dir, &st), 0);
    ASSERT_EQ_INT(st.st_mode & 0777, 0700);
    ASSERT_EQ_INT(strncmp(s.token, "skf_", 4), 0);
    _cleanup_free_ char *log = read_text(s.log);
    ASSERT_CONTAINS(log, "admin token written to");
    ASSERT_CONTAINS(log, path);

    struct resp r;
    request(&s, "GET", "/v1/tokens", s.token, NULL, &r);
    ASSERT_EQ_INT(r.status, 200);
    ASSERT_EQ_INT(json_array_size(json_object_get(r.json, "tokens")), 1);
    resp_free(&r);
    skiffd_finish(&s);
}

static void expect_401(const struct skiffd *s, const char *path, const char *authorization)
{
    int fd = connect_to(s, NULL);
    ASSERT_TRUE(fd >= 0);
    char req[1024];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s%s%s\r\n", path,
                     authorization ? "Authorization: " : "", authorization ? authorization : "",
                     authorization ? "\r\n" : "");
    send_all(fd, req, (size_t)n);
    struct resp r;
    ASSERT_EQ_INT(read_response(fd, &r, 10), 0);
    close(fd);
    ASSERT_EQ_INT(r.status, 401);
    ASSERT_EQ_STR(err_code(&r), "unauthenticated");
    ASSERT_TRUE(err_message(&r) != NULL && err_message(&r)[0] != '\0');
    ASSERT_CONTAINS(resp_header(&r, "WWW-Authenticate"), "Bearer");
    resp_free(&r);
}

TEST(missing_wrong_or_malformed_token_is_401)
{
    struct skiffd s;
    make_data_dir(&s);
    skiffd_start(&s);
    expect_401(&s, "/v1/tokens", NULL);
    expect_401(&s, "/v1/tokens", "Bearer ");
    expect_401(&s, "/v1/tokens", "Bearer not-a-token");
    expect_401(&s, "/v1/tokens", "Basic YWRtaW46YWRtaW4=");
    /* Well-formed, right id, wrong secret. */
    char wrong[128];
    snprintf(wrong, sizeof(wrong), "Bearer %s", s.token);
    size_t len = strlen(wrong);
    wrong[len - 1] = wrong[len - 1] == 'A' ? 'B' : 'A';
    expect_401(&s, "/v1/tokens", wrong);
    /* Well-formed, unknown id. */
    snprintf(wrong, sizeof(wrong), "Bearer skf_0123456789abcdef_%s", s.token + 4 + 16 + 1);
    expect_401(&s, "/v1/tokens", wrong);
    /* The token in the query string or a cookie is not a token. */
    expect_401(&s, "/metrics", NULL);
    /* Without a token, an unknown path says 401, not 404. */
    expect_401(&s, "/v1/no/such/thing", NULL);
    skiffd_finish(&s);
}

TEST(tokens_create_list_get_revoke)
{
    struct skiffd s;
    make_data_dir(&s);
    skiffd_start(&s);
    struct resp r;
    request(&s, "POST", "/v1/tokens", s.token, "{\"name\": \"ci\", \"role\": \"admin\", \"ttl_seconds\": 3600}", &r);
    ASSERT_EQ_INT(r.status, 201);
    const char *tok = json_string_value(json_object_get(r.json, "token"));
    const char *id = json_string_value(json_object_get(r.json, "id"));
    ASSERT_TRUE(tok != NULL && id != NULL);
    char token[128], tid[64];
    snprintf(token, sizeof(token), "%s", tok);
    snprintf(tid, sizeof(tid), "%s", id);
    ASSERT_EQ_STR(json_string_value(json_object_get(r.json, "name")), "ci");
    ASSERT_EQ_STR(json_string_value(json_object_get(r.json, "role")), "admin");
    ASSERT_TRUE(json_is_string(json_object_get(r.json, "created_at")));
    ASSERT_TRUE(json_is_string(json_object_get(r.json, "expires_at")));
    ASSERT_CONTAINS(resp_header(&r, "Location"), tid);
    ASSERT_EQ_STR(resp_header(&r, "Cache-Control"), "no-store");
    resp_free(&r);

    /* The new token works. The list never shows a secret or a hash. */
    request(&s, "GET", "/v1/tokens", token, NULL, &r);
    ASSERT_EQ_INT(r.status, 200);
    ASSERT_EQ_INT(json_array_size(json_object_get(r.json, "tokens")), 2);
    ASSERT_NOT_CONTAINS(r.body, token + 4 + 16 + 1);
    ASSERT_NOT_CONTAINS(r.body, s.token + 4 + 16 + 1);
    ASSERT_NOT_CONTAINS(r.body, "\"token\"");
    ASSERT_NOT_CONTAINS(r.body, "hash");
    ASSERT_CONTAINS(r.body, "\"name\":\"ci\"");
    resp_free(&r);

    char path[128];
    snprintf(path, sizeof(path), "/v1/tokens/%s", tid);
    request(&s, "GET", path, s.token, NULL, &r);
    ASSERT_EQ_INT(r.status, 200);
    ASSERT_EQ_STR(json_string_value(json_object_get(r.json, "state")), "active");
    ASSERT_TRUE(json_is_null(json_object_get(r.json, "revoked_at")));
    resp_free(&r);

    /* Names are unique, checked and bounded; the role is "admin". */
    request(&s, "POST", "/v1/tokens", s.token, "{\"name\": \"ci\"}", &r);
    ASSERT_EQ_INT(r.status, 409);
    ASSERT_EQ_STR(err_code(&r), "already_exists");
    resp_free(&r);
    request(&s, "POST", "/v1/tokens", s.token, "{\"name\": \"../x\"}", &r);
    ASSERT_EQ_INT(r.status, 400);
    ASSERT_EQ_STR(err_code(&r), "invalid_argument");
    resp_free(&r);
    request(&s, "POST", "/v1/tokens", s.token, "{\"name\": \"x\", \"role\": \"root\"}", &r);
    ASSERT_EQ_INT(r.status, 400);
    ASSERT_CONTAINS(err_message(&r), "role");
    resp_free(&r);
    request(&s, "POST", "/v1/tokens", s.token, "{\"name\": \"x\", \"ttl_seconds\": 0}", &r);
    ASSERT_EQ_INT(r.status, 400);
    ASSERT_CONTAINS(err_message(&r), "ttl_seconds");
    resp_free(&r);
    request(&s, "POST", "/v1/tokens", s.token, "{}", &r);
    ASSERT_EQ_INT(r.status, 400);
    ASSERT_CONTAINS(err_message(&r), "'name' is required");
    resp_free(&r);

    /* Revoke: the token stops working at once; revoking again is fine. */
    request(&s, "DELETE", path, s.token, NULL, &r);
    ASSERT_EQ_INT(r.status, 200);
    ASSERT_EQ_STR(json_string_value(json_object_get(r.json, "id")), tid);
    ASSERT_TRUE(json_is_string(json_object_get(r.json, "revoked_at")));
    resp_free(&r);
    request(&s, "GET", "/v1/tokens", token, NULL, &r);
    ASSERT_EQ_INT(r.status, 401);
    ASSERT_EQ_STR(err_code(&r), "unauthenticated");
    resp_free(&r);
    request(&s, "DELETE", path, s.token, NULL, &r);
    ASSERT_EQ_INT(r.status, 200);
    resp_free(&r);
    request(&s, "GET", path, s.token, NULL, &r);
    ASSERT_EQ_STR(json_string_value(json_object_get(r.json, "state")), "revoked");
    resp_free(&r);
    request(&s, "DELETE", "/v1/tokens/0000000000000000", s.token, NULL, &r);
    ASSERT_EQ_INT(r.status, 404);
    ASSERT_EQ_STR(err_code(&r), "not_found");
    resp_free(&r);
    skiffd_finish(&s);
}

TEST(last_admin_token_cannot_be_revoked)
{
    struct skiffd s;
    make_data_dir(&s);
    skiffd_start(&s);
    char first_id[32];
    snprintf(first_id, sizeof(first_id), "%.16s", s.token + 4);
    char path[128];
    snprintf(path, sizeof(path), "/v1/tokens/%s", first_id);
    struct resp r;
    request(&s, "DELETE", path, s.token, NULL, &r);
    ASSERT_EQ_INT(r.status, 409);
    ASSERT_EQ_STR(err_code(&r), "failed_precondition");
    resp_free(&r);

    /* With a second admin token, the first can go; then the second is last. */
    char token[128], id[64];
    create_token(&s, "second", token, sizeof(token), id, sizeof(id));
    request(&s, "DELETE", path, token, NULL, &r);
    ASSERT_EQ_INT(r.status, 200);
    resp_free(&r);
    snprintf(path, sizeof(path), "/v1/tokens/%s", id);
    request(&s, "DELETE", path, token, NULL, &r);
    ASSERT_EQ_INT(r.status, 409);
    ASSERT_EQ_STR(err_code(&r), "failed_precondition");
    resp_free(&r);
    request(&s, "GET", "/v1/tokens", token, NULL, &r);
    ASSERT_EQ_INT(r.status, 200);
    resp_free(&r);
    skiffd_finish(&s);
}

TEST(unknown_path_is_404_and_bad_parameter_is_400)
{
    struct skiffd s;
    make_data_dir(&s);
    skiffd_start(&s);
    struct resp r;
    const char *missing[] = {"/nope", "/v1", "/v1/tokens/", "/v1//tokens", "/v1/tokens/a/b", "/V1/tokens"};
    for (size_t i = 0; i < SK_ARRAY_SIZE(missing); i++) {
        request(&s, "GET", missing[i], s.token, NULL, &r);
        ASSERT_EQ_INT(r.status, 404);
        ASSERT_EQ_STR(err_code(&r), "not_found");
        resp_free(&r);
    }
    request(&s, "GET", "/v1/tokens/..", s.token, NULL, &r);
    ASSERT_EQ_INT(r.status, 400);
    ASSERT_EQ_STR(err_code(&r), "invalid_argument");
    ASSERT_CONTAINS(err_message(&r), "'id'");
    resp_free(&r);
    char long_id[300];
    memset(long_id, 'a', sizeof(long_id));
    memcpy(long_id, "/v1/tokens/", 11);
    long_id[sizeof(long_id) - 1] = '\0';
    request(&s, "GET", long_id, s.token, NULL, &r);
    ASSERT_EQ_INT(r.status, 400);
    resp_free(&r);
    skiffd_finish(&s);
}

TEST(wrong_method_is_405_with_allow)
{
    struct skiffd s;
    make_data_dir(&s);
    skiffd_start(&s);
    struct resp r;
    request(&s, "PUT", "/v1/tokens", s.token, "{}", &r);
    ASSERT_EQ_INT(r.status, 405);
    ASSERT_EQ_STR(err_code(&r), "method_not_allowed");
    ASSERT_CONTAINS(resp_header(&r, "Allow"), "GET");
    ASSERT_CONTAINS(resp_header(&r, "Allow"), "POST");
    resp_free(&r);
    request(&s, "POST", "/healthz", NULL, NULL, &r);
    ASSERT_EQ_INT(r.status, 401); /* no token: nothing is said about the path */
    resp_free(&r);
    request(&s, "POST", "/healthz", s.token, NULL, &r);
    ASSERT_EQ_INT(r.status, 405);
    resp_free(&r);
    skiffd_finish(&s);
}

TEST(bad_bodies_get_precise_400s)
{
    struct skiffd s;
    make_data_dir(&s);
    skiffd_start(&s);
    struct resp r;
    request(&s, "POST", "/v1/tokens", s.token, "{\"name\": \"x\",\n  }", &r);
    ASSERT_EQ_INT(r.status, 400);
    ASSERT_EQ_STR(err_code(&r), "invalid_json");
    ASSERT_CONTAINS(err_message(&r), "line 2");
    ASSERT_CONTAINS(err_message(&r), "column");
    resp_free(&r);
    request(&s, "POST", "/v1/tokens", s.token, "{\"name\": \"x\", \"colour\": \"red\"}", &r);
    ASSERT_EQ_INT(r.status, 400);
    ASSERT_EQ_STR(err_code(&r), "unknown_field");
    ASSERT_CONTAINS(err_message(&r), "'colour'");
    resp_free(&r);
    request(&s, "POST", "/v1/tokens", s.token, "{\"name\": \"x\", \"ttl_seconds\": \"60\"}", &r);
    ASSERT_EQ_INT(r.status, 400);
    ASSERT_EQ_STR(err_code(&r), "invalid_argument");
    ASSERT_CONTAINS(err_message(&r), "'ttl_seconds'");
    ASSERT_CONTAINS(err_message(&r), "integer");
    resp_free(&r);
    request(&s, "POST", "/v1/tokens", s.token, "{\"name\": 7}", &r);
    ASSERT_EQ_INT(r.status, 400);
    ASSERT_CONTAINS(err_message(&r), "'name' must be a string");
    resp_free(&r);
    request(&s, "POST", "/v1/tokens", s.token, "[1, 2]", &r);
    ASSERT_EQ_INT(r.status, 400);
    ASSERT_EQ_STR(err_code(&r), "invalid_argument");
    resp_free(&r);
    request(&s, "POST", "/v1/tokens", s.token, "{\"name\": \"a\", \"name\": \"b\"}", &r);
    ASSERT_EQ_INT(r.status, 400);
    ASSERT_EQ_STR(err_code(&r), "invalid_json");
    resp_free(&r);
    /* Not UTF-8. */
    request(&s, "POST", "/v1/tokens", s.token, "{\"name\": \"\xff\xfe\"}", &r);
    ASSERT_EQ_INT(r.status, 400);
    ASSERT_EQ_STR(err_code(&r), "invalid_json");
    resp_free(&r);
    skiffd_finish(&s);
}

TEST(oversized_body_is_413_and_the_daemon_carries_on)
{
    struct skiffd s;
    make_data_dir(&s);
    const char *extra[] = {"--max-body", "1024", NULL};
    skiffd_start_args(&s, extra);
    struct resp r;
    /* Refused by Content-Length before the body is read. */
    char big[2048];
    memset(big, ' ', sizeof(big));
    memcpy(big, "{\"name\": \"x\"}", 13);
    request_body(&s, "POST", "/v1/tokens", s.token, big, sizeof(big), &r);
    ASSERT_EQ_INT(r.status, 413);
    ASSERT_EQ_STR(err_code(&r), "too_large");
    resp_free(&r);

    /* A chunked body has no Content-Length: refused while reading. */
    int fd = connect_to(&s, NULL);
    char head[512];
    int n = snprintf(head, sizeof(head),
                     "POST /v1/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                     "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
                     s.token);
    send_all(fd, head, (size_t)n);
    for (int i = 0; i < 4; i++) {
        char chunk[600];
        int m = snprintf(chunk, sizeof(chunk), "200\r\n%0512d\r\n", 0);
        send_all(fd, chunk, (size_t)m);
    }
    send_all(fd, "0\r\n\r\n", 5);
    ASSERT_EQ_INT(read_response(fd, &r, 10), 0);
    close(fd);
    ASSERT_EQ_INT(r.status, 413);
    ASSERT_EQ_STR(err_code(&r), "too_large");
    resp_free(&r);

    /* Just under the limit is fine, and the daemon still serves. */
    memset(big, ' ', 1000);
    memcpy(big, "{\"name\": \"small\"}", 17);
    request_body(&s, "POST", "/v1/tokens", s.token, big, 1000, &r);
    ASSERT_EQ_INT(r.status, 201);
    resp_free(&r);
    request(&s, "GET", "/healthz", NULL, NULL, &r);
    ASSERT_EQ_INT(r.status, 200);
    resp_free(&r);
    skiffd_finish(&s);
}

TEST(idle_connections_do_not_starve_requests)
{
    struct skiffd s;
    make_data_dir(&s);
    skiffd_start(&s);
    int idle[200];
    for (size_t i = 0; i < SK_ARRAY_SIZE(idle); i++) {
        idle[i] = connect_to(&s, NULL);
        ASSERT_TRUE(idle[i] >= 0);
    }
    /* A partial request line is as idle as nothing at all. */
    send_all(idle[0], "GET /heal", 9);
    double t0 = now_ms();
    struct resp r;
    request(&s, "GET", "/v1/version", s.token, NULL, &r);
    double took = now_ms() - t0;
    ASSERT_EQ_INT(r.status, 200);
    ASSERT_LT_INT(took, 2000);
    resp_free(&r);
    for (size_t i = 0; i < SK_ARRAY_SIZE(idle); i++)
        close(idle[i]);
    skiffd_finish(&s);
}

TEST(idle_connections_are_closed_after_the_timeout)
{
    struct skiffd s;
    make_data_dir(&s);
    const char *extra[] = {"--idle-timeout", "1", NULL};
    skiffd_start_args(&s, extra);
    int fd = connect_to(&s, NULL);
    ASSERT_TRUE(fd >= 0);
    double t0 = now_ms();
    struct pollfd p = {.fd = fd, .events = POLLIN};
    ASSERT_EQ_INT(poll(&p, 1, 5000), 1);
    char c;
    ASSERT_LE_INT(read(fd, &c, 1), 0); /* EOF or reset: the server closed it */
    ASSERT_LT_INT(now_ms() - t0, 4000);
    close(fd);
    skiffd_finish(&s);
}

TEST(one_address_cannot_take_every_connection)
{
    struct skiffd s;
    make_data_dir(&s);
    const char *extra[] = {"--max-per-ip", "20", "--max-connections", "40", NULL};
    skiffd_start_args(&s, extra);
    int idle[20];
    for (size_t i = 0; i < SK_ARRAY_SIZE(idle); i++) {
        idle[i] = connect_to(&s, "127.0.0.1");
        ASSERT_TRUE(idle[i] >= 0);
    }
    usleep(200000); /* let the server accept them all */
    /* The 21st from the same address is turned away ... */
    int extra_fd = connect_to(&s, "127.0.0.1");
    ASSERT_TRUE(extra_fd >= 0);
    send_request(extra_fd, "GET", "/healthz", NULL, NULL, 0, false);
    struct resp r;
    ASSERT_EQ_INT(read_response(extra_fd, &r, 5), -1);
    close(extra_fd);
    /* ... while another address is served at once. */
    int fd = connect_to(&s, "127.0.0.2");
    ASSERT_TRUE(fd >= 0);
    send_request(fd, "GET", "/healthz", NULL, NULL, 0, false);
    ASSERT_EQ_INT(read_response(fd, &r, 2), 0);
    ASSERT_EQ_INT(r.status, 200);
    resp_free(&r);
    close(fd);
    for (size_t i = 0; i < SK_ARRAY_SIZE(idle); i++)
        close(idle[i]);
    skiffd_finish(&s);
}

TEST(keep_alive_serves_several_requests_on_one_connection)
{
    struct skiffd s;
    make_data_dir(&s);
    skiffd_start(&s);
    int fd = connect_to(&s, NULL);
    struct resp r;
    const char *paths[] = {"/v1/version", "/v1/nope", "/healthz", "/v1/tokens"};
    const int want[] = {200, 404, 200, 200};
    for (size_t i = 0; i < SK_ARRAY_SIZE(paths); i++) {
        send_request(fd, "GET", paths[i], s.token, NULL, 0, true);
        ASSERT_EQ_INT(read_response(fd, &r, 5), 0);
        ASSERT_EQ_INT(r.status, want[i]);
        resp_free(&r);
    }
    close(fd);
    skiffd_finish(&s);
}

TEST(restart_keeps_tokens_and_the_admin_token_file)
{
    struct skiffd s;
    make_data_dir(&s);
    skiffd_start(&s);
    char token[128], id[64];
    create_token(&s, "kept", token, sizeof(token), id, sizeof(id));
    char first[128];
    snprintf(first, sizeof(first), "%s", s.token);
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/admin.token", s.dir);
    struct stat st1, st2;
    ASSERT_EQ_INT(stat(path, &st1), 0);
    ASSERT_EQ_INT(skiffd_stop(&s), 0);

    skiffd_start(&s);
    ASSERT_EQ_STR(s.token, first);
    ASSERT_EQ_INT(stat(path, &st2), 0);
    ASSERT_EQ_INT(st1.st_ino, st2.st_ino);
    ASSERT_EQ_INT(st1.st_mtim.tv_sec, st2.st_mtim.tv_sec);
    ASSERT_EQ_INT(st1.st_mtim.tv_nsec, st2.st_mtim.tv_nsec);
    struct resp r;
    request(&s, "GET", "/v1/tokens", first, NULL, &r);
    ASSERT_EQ_INT(r.status, 200);
    ASSERT_EQ_INT(json_array_size(json_object_get(r.json, "tokens")), 2);
    resp_free(&r);
    request(&s, "GET", "/v1/version", token, NULL, &r);
    ASSERT_EQ_INT(r.status, 200);
    resp_free(&r);
    skiffd_finish(&s);
}

TEST(metrics_are_prometheus_text_and_count_requests)
{
    struct skiffd s;
    make_data_dir(&s);
    skiffd_start(&s);
    struct resp r;
    request(&s, "GET", "/v1/version", s.token, NULL, &r);
    resp_free(&r);
    request(&s, "GET", "/v1/nope", s.token, NULL, &r);
    resp_free(&r);
    request(&s, "GET", "/metrics", s.token, NULL, &r);
    ASSERT_EQ_INT(r.status, 200);
    ASSERT_CONTAINS(resp_header(&r, "Content-Type"), "text/plain");
    ASSERT_CONTAINS(r.body, "# TYPE skiff_http_requests_total counter\n");
    ASSERT_CONTAINS(r.body, "skiff_http_requests_total{code=\"200\"} ");
    ASSERT_CONTAINS(r.body, "skiff_http_requests_total{code=\"404\"} 1\n");
    ASSERT_CONTAINS(r.body, "# TYPE skiff_http_request_duration_seconds histogram\n");
    ASSERT_CONTAINS(r.body, "skiff_http_request_duration_seconds_bucket{le=\"+Inf\"} ");
    ASSERT_CONTAINS(r.body, "skiff_sandboxes{state=\"running\"} 0\n");
    ASSERT_CONTAINS(r.body, "skiff_sandbox_creates_total 0\n");
    ASSERT_CONTAINS(r.body, "skiff_sandbox_terminations_total{reason=\"oom\"} 0\n");
    ASSERT_CONTAINS(r.body, "skiff_sandbox_create_duration_seconds_count 0\n");
    ASSERT_CONTAINS(r.body, "skiff_exec_duration_seconds_count 0\n");
    resp_free(&r);
    skiffd_finish(&s);
}

TEST(sigterm_answers_waiting_requests_and_exits_0)
{
    struct skiffd s;
    make_data_dir(&s);
    const char *extra[] = {"--debug-routes", NULL};
    skiffd_start_args(&s, extra);
    int fd = connect_to(&s, NULL);
    send_request(fd, "GET", "/v1/debug/wait?ms=60000", s.token, NULL, 0, false);
    usleep(200000);
    double t0 = now_ms();
    kill(s.pid, SIGTERM);
    struct resp r;
    ASSERT_EQ_INT(read_response(fd, &r, 5), 0);
    ASSERT_EQ_INT(r.status, 503);
    ASSERT_EQ_STR(err_code(&r), "unavailable");
    resp_free(&r);
    close(fd);
    int status = 0;
    ASSERT_EQ_INT(waitpid(s.pid, &status, 0), s.pid);
    s.pid = 0;
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ_INT(WEXITSTATUS(status), 0);
    ASSERT_LT_INT(now_ms() - t0, 3000);
    /* And it no longer listens. */
    ASSERT_EQ_INT(connect_to(&s, NULL), -1);
    skiffd_finish(&s);
}

TEST(sigterm_cuts_endless_streams_and_exits_0)
{
    struct skiffd s;
    make_data_dir(&s);
    const char *extra[] = {"--debug-routes", NULL};
    skiffd_start_args(&s, extra);
    int fd = connect_to(&s, NULL);
    send_request(fd, "GET", "/v1/debug/stream?bytes=10000000000&chunk=1000&interval_ms=50", s.token, NULL, 0, false);
    char buf[4096];
    ASSERT_GT_INT(read(fd, buf, sizeof(buf)), 0);
    double t0 = now_ms();
    ASSERT_EQ_INT(skiffd_stop(&s), 0);
    ASSERT_LT_INT(now_ms() - t0, 2000);
    /* The stream ends without its final chunk: the client can tell. */
    struct resp r;
    ASSERT_EQ_INT(read_response(fd, &r, 2), -1);
    close(fd);
    skiffd_finish(&s);
}

TEST(child_exit_arrives_as_an_event)
{
    struct skiffd s;
    make_data_dir(&s);
    const char *extra[] = {"--debug-routes", NULL};
    skiffd_start_args(&s, extra);
    /* Several children at once: SIGCHLDs coalesce, every exit is seen. */
    int fds[5];
    for (int i = 0; i < 5; i++) {
        char path[128];
        snprintf(path, sizeof(path), "/v1/debug/child?exit=%d&sleep_ms=%d", 40 + i, i % 2 ? 0 : 100);
        fds[i] = connect_to(&s, NULL);
        send_request(fds[i], "POST", path, s.token, NULL, 0, false);
    }
    for (int i = 0; i < 5; i++) {
        struct resp r;
        ASSERT_EQ_INT(read_response(fds[i], &r, 10), 0);
        ASSERT_EQ_INT(r.status, 200);
        ASSERT_EQ_INT(json_integer_value(json_object_get(r.json, "exit_code")), 40 + i);
        ASSERT_TRUE(json_is_null(json_object_get(r.json, "signal")));
        resp_free(&r);
        close(fds[i]);
    }
    skiffd_finish(&s);
}

TEST(worker_thread_result_arrives_through_the_loop)
{
    struct skiffd s;
    make_data_dir(&s);
    const char *extra[] = {"--debug-routes", NULL};
    skiffd_start_args(&s, extra);
    int fds[4];
    for (int i = 0; i < 4; i++) {
        char path[128];
        snprintf(path, sizeof(path), "/v1/debug/thread?value=%d&sleep_ms=%d", i * 10, 50 * (4 - i));
        fds[i] = connect_to(&s, NULL);
        send_request(fds[i], "POST", path, s.token, NULL, 0, false);
    }
    struct resp r;
    request(&s, "GET", "/healthz", NULL, NULL, &r); /* the loop is free meanwhile */
    ASSERT_EQ_INT(r.status, 200);
    resp_free(&r);
    for (int i = 0; i < 4; i++) {
        ASSERT_EQ_INT(read_response(fds[i], &r, 10), 0);
        ASSERT_EQ_INT(r.status, 200);
        ASSERT_EQ_INT(json_integer_value(json_object_get(r.json, "result")), i * 20);
        resp_free(&r);
        close(fds[i]);
    }
    skiffd_finish(&s);
}

TEST(streamed_answer_arrives_whole_while_others_are_served)
{
    struct skiffd s;
    make_data_dir(&s);
    const char *extra[] = {"--debug-routes", NULL};
    skiffd_start_args(&s, extra);
    /* 1 MB arriving in 20 pieces 20 ms apart: the connection sleeps and
     * wakes 20 times. */
    int fd = connect_to(&s, NULL);
    send_request(fd, "GET", "/v1/debug/stream?bytes=1000000&chunk=50000&interval_ms=20", s.token, NULL, 0, false);
    struct resp other;
    request(&s, "GET", "/healthz", NULL, NULL, &other);
    ASSERT_EQ_INT(other.status, 200);
    resp_free(&other);
    struct resp r;
    ASSERT_EQ_INT(read_response(fd, &r, 20), 0);
    close(fd);
    ASSERT_EQ_INT(r.status, 200);
    ASSERT_EQ_STR(resp_header(&r, "Transfer-Encoding"), "chunked");
    ASSERT_EQ_INT(r.body_len, 1000000);
    for (size_t i = 0; i < r.body_len; i++)
        if (r.body[i] != (char)('a' + i % 26))
            FAIL("byte %zu is '%c'", i, r.body[i]);
    resp_free(&r);

    /* A client that hangs up mid-stream costs nothing lasting. */
    fd = connect_to(&s, NULL);
    send_request(fd, "GET", "/v1/debug/stream?bytes=100000000&chunk=65536&interval_ms=5", s.token, NULL, 0, false);
    char buf[4096];
    ASSERT_GT_INT(read(fd, buf, sizeof(buf)), 0);
    close(fd);
    usleep(100000);
    request(&s, "GET", "/v1/version", s.token, NULL, &r);
    ASSERT_EQ_INT(r.status, 200);
    resp_free(&r);
    skiffd_finish(&s);
}

TEST(long_poll_answers_later_without_blocking_the_loop)
{
    struct skiffd s;
    make_data_dir(&s);
    const char *extra[] = {"--debug-routes", NULL};
    skiffd_start_args(&s, extra);
    double t0 = now_ms();
    int fd = connect_to(&s, NULL);
    send_request(fd, "GET", "/v1/debug/wait?ms=700", s.token, NULL, 0, false);
    struct resp r;
    for (int i = 0; i < 5; i++) {
        request(&s, "GET", "/v1/version", s.token, NULL, &r);
        ASSERT_EQ_INT(r.status, 200);
        resp_free(&r);
    }
    ASSERT_LT_INT(now_ms() - t0, 500);
    ASSERT_EQ_INT(read_response(fd, &r, 5), 0);
    ASSERT_EQ_INT(r.status, 200);
    ASSERT_EQ_INT(json_integer_value(json_object_get(r.json, "waited_ms")), 700);
    ASSERT_GE_INT(now_ms() - t0, 690);
    resp_free(&r);
    close(fd);
    request(&s, "GET", "/v1/debug/wait?ms=abc", s.token, NULL, &r);
    ASSERT_EQ_INT(r.status, 400);
    ASSERT_CONTAINS(err_message(&r), "'ms'");
    resp_free(&r);
    skiffd_finish(&s);
}

TEST(body_sink_takes_a_large_body_with_backpressure)
{
    struct skiffd s;
    make_data_dir(&s);
    const char *extra[] = {"--debug-routes", "--max-body", "4096", NULL};
    skiffd_start_args(&s, extra);
    size_t len = 3 * 1024 * 1024 + 7;
    char *body = xmalloc(len);
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < len; i++) {
        body[i] = (char)(i * 7 + i / 4096);
        h ^= (unsigned char)body[i];
        h *= UINT64_C(0x100000001b3);
    }
    struct resp r;
    request_body(&s, "POST", "/v1/debug/sink?delay_ms=1", s.token, body, len, &r);
    ASSERT_EQ_INT(r.status, 200);
    ASSERT_EQ_INT(json_integer_value(json_object_get(r.json, "bytes")), len);
    char hex[17];
    snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)h);
    ASSERT_EQ_STR(json_string_value(json_object_get(r.json, "fnv1a64")), hex);
    resp_free(&r);
    free(body);
    skiffd_finish(&s);
}

TEST(unix_socket_listener)
{
    struct skiffd s;
    make_data_dir(&s);
    char top[PATH_MAX];
    snprintf(top, sizeof(top), "%s", s.dir);
    *strrchr(top, '/') = '\0';
    snprintf(s.unix_path, sizeof(s.unix_path), "%s/api.sock", top);
    skiffd_start(&s);
    struct stat st;
    ASSERT_EQ_INT(stat(s.unix_path, &st), 0);
    ASSERT_EQ_INT(st.st_mode & 0777, 0600);
    struct resp r;
    request(&s, "GET", "/v1/version", s.token, NULL, &r);
    ASSERT_EQ_INT(r.status, 200);
    resp_free(&r);
    ASSERT_EQ_INT(skiffd_stop(&s), 0);
    ASSERT_EQ_INT(lstat(s.unix_path, &st), -1); /* removed on stop */
    skiffd_finish(&s);
}

TEST(bad_command_lines_exit_2)
{
    char bin[PATH_MAX];
    snprintf(bin, sizeof(bin), "%s/skiffd", sk_test_bin_dir());
    const char *cases[][4] = {
        {"--max-body", "lots", NULL},
        {"--log-level", "loud", NULL},
        {"--max-connections", "0", NULL},
        {"--no-such-option", NULL},
        {"stray", NULL},
    };
    for (size_t i = 0; i < SK_ARRAY_SIZE(cases); i++) {
        const char *argv[6] = {bin, cases[i][0], cases[i][1], NULL};
        struct sk_test_output o;
        ASSERT_EQ_INT(sk_test_run(argv, NULL, NULL, 10, &o), 0);
        ASSERT_EQ_INT(o.exit_code, 2);
        sk_test_output_free(&o);
    }
    const char *help[] = {bin, "--help", NULL};
    struct sk_test_output o;
    ASSERT_EQ_INT(sk_test_run(help, NULL, NULL, 10, &o), 0);
    ASSERT_EQ_INT(o.exit_code, 0);
    ASSERT_CONTAINS(o.out, "--listen");
    sk_test_output_free(&o);
}

TEST(listen_address_in_use_fails_cleanly)
{
    struct skiffd a;
    make_data_dir(&a);
    skiffd_start(&a);
    struct skiffd b;
    make_data_dir(&b);
    char bin[PATH_MAX], listen[64];
    snprintf(bin, sizeof(bin), "%s/skiffd", sk_test_bin_dir());
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", a.port);
    const char *argv[] = {bin, "--listen", listen, "--data-dir", b.dir, NULL};
    struct sk_test_output o;
    ASSERT_EQ_INT(sk_test_run(argv, NULL, NULL, 10, &o), 0);
    ASSERT_EQ_INT(o.exit_code, 1);
    ASSERT_CONTAINS(o.err, "in use");
    sk_test_output_free(&o);
    skiffd_finish(&a);
    b.pid = 0;
    char top[PATH_MAX];
    snprintf(top, sizeof(top), "%s", b.dir);
    *strrchr(top, '/') = '\0';
    sk_remove_tree(top, NULL);
}
