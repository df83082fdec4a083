/* `skiff run`: exit codes, streams, stdin, options, errors, --json, images. */
#include <fcntl.h>
#include <sys/stat.h>

#include "sandbox_test.h"

TEST(exit_code_is_propagated)
{
    struct sk_test_output o;
    skiff_run(&o, "--", "/bin/sh", "-c", "exit 7");
    ASSERT_EQ_INT(o.exit_code, 7);
    sk_test_output_free(&o);
    skiff_run(&o, "--", "/bin/true");
    ASSERT_EQ_INT(o.exit_code, 0);
    ASSERT_EQ_STR(o.err, "");
    sk_test_output_free(&o);
}

TEST(signal_death_gives_128_plus_n)
{
    struct sk_test_output o;
    skiff_run(&o, "--json", "--", "/bin/sh", "-c", "kill -TERM $$");
    ASSERT_EQ_INT(o.exit_code, 143);
    const char *rec = last_line(o.out);
    ASSERT_EQ_INT(json_int(rec, "signal"), 15);
    ASSERT_CONTAINS(rec, "\"reason\":\"exited\"");
    sk_test_output_free(&o);
}

TEST(stdout_and_stderr_are_separate)
{
    struct sk_test_output o;
    skiff_run(&o, "--", "/bin/sh", "-c", "echo to-out; echo to-err >&2");
    ASSERT_EQ_INT(o.exit_code, 0);
    ASSERT_EQ_STR(o.out, "to-out\n");
    ASSERT_EQ_STR(o.err, "to-err\n");
    sk_test_output_free(&o);
}

TEST(stdin_is_forwarded_until_eof)
{
    struct sk_test_output o;
    skiff_run_in(&o, "line one\nline two\n", 30, "--", "/bin/sh", "-c", "wc -l; echo done", (const char *)NULL);
    ASSERT_EQ_INT(o.exit_code, 0);
    ASSERT_EQ_STR(o.out, "2\ndone\n");
    sk_test_output_free(&o);
}

TEST(large_output_streams_completely)
{
    struct sk_test_output o;
    skiff_run(&o, "--", "/bin/sh", "-c", "head -c 20000000 /dev/zero");
    ASSERT_EQ_INT(o.exit_code, 0);
    ASSERT_EQ_INT(o.out_len, 20000000);
    sk_test_output_free(&o);
}

/* A background process holding stdout open does not keep skiff run alive. */
TEST(background_process_does_not_hang_run)
{
    struct sk_test_output o;
    skiff_run(&o, "--", "/bin/sh", "-c", "sleep 100 & echo started");
    ASSERT_EQ_INT(o.exit_code, 0);
    ASSERT_EQ_STR(o.out, "started\n");
    ASSERT_LT_INT(o.wall_ms, 5000);
    sk_test_output_free(&o);
}

TEST(env_and_workdir)
{
    struct sk_test_output o;
    skiff_run(&o, "--env", "FOO=bar baz", "--env", "HOME=/tmp", "--workdir", "/tmp", "--", "/bin/sh", "-c",
              "echo \"$FOO|$HOME|$(pwd)|$PATH\"");
    ASSERT_EQ_INT(o.exit_code, 0);
    ASSERT_EQ_STR(o.out, "bar baz|/tmp|/tmp|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n");
    sk_test_output_free(&o);
}

TEST(command_not_found_is_127_with_message)
{
    struct sk_test_output o;
    skiff_run(&o, "--", "no-such-command-xyz");
    ASSERT_EQ_INT(o.exit_code, 127);
    ASSERT_CONTAINS(o.err, "no-such-command-xyz");
    ASSERT_CONTAINS(o.err, "No such file or directory");
    sk_test_output_free(&o);
}

TEST(bad_options_are_rejected)
{
    static const char *const cases[][4] = {
        {"--memory", "lots", "/bin/true", "--memory"},  {"--cpu", "-1", "/bin/true", "--cpu"},
        {"--pids", "0", "/bin/true", "--pids"},         {"--timeout", "abc", "/bin/true", "--timeout"},
        {"--mount", "nocolon", "/bin/true", "--mount"}, {"--workdir", "relative", "/bin/true", "--workdir"},
        {"--env", "NOEQUALS", "/bin/true", "--env"},    {"--bogus", "x", "/bin/true", "unknown option"},
    };
    for (size_t i = 0; i < SK_ARRAY_SIZE(cases); i++) {
        struct sk_test_output o;
        skiff_run(&o, cases[i][0], cases[i][1], "--", cases[i][2]);
        ASSERT_EQ_INT(o.exit_code, 2);
        ASSERT_CONTAINS(o.err, cases[i][3]);
        sk_test_output_free(&o);
    }
    struct sk_test_output o;
    skiff_run(&o, "--memory", "64M");
    ASSERT_EQ_INT(o.exit_code, 2);
    ASSERT_CONTAINS(o.err, "missing command");
    sk_test_output_free(&o);
}

TEST(invalid_limits_and_paths_fail_before_running)
{
    struct sk_test_output o;
    skiff_run(&o, "--memory", "1K", "--", "/bin/echo", "ran");
    ASSERT_EQ_INT(o.exit_code, 125);
    ASSERT_CONTAINS(o.err, "memory limit must be at least");
    ASSERT_NOT_CONTAINS(o.out, "ran");
    sk_test_output_free(&o);
    skiff_run(&o, "--image", "/nonexistent-rootfs", "--", "/bin/echo", "ran");
    ASSERT_EQ_INT(o.exit_code, 125);
    ASSERT_CONTAINS(o.err, "/nonexistent-rootfs");
    sk_test_output_free(&o);
    skiff_run(&o, "--mount", "/nonexistent-src:/data", "--", "/bin/echo", "ran");
    ASSERT_EQ_INT(o.exit_code, 125);
    ASSERT_CONTAINS(o.err, "/nonexistent-src");
    sk_test_output_free(&o);
    skiff_run(&o, "--mount", "/tmp:/data/../../etc", "--", "/bin/echo", "ran");
    ASSERT_EQ_INT(o.exit_code, 125);
    ASSERT_CONTAINS(o.err, "..");
    sk_test_output_free(&o);
}

TEST(json_record_has_every_field)
{
    struct sk_test_output o;
    skiff_run(&o, "--json", "--memory", "128M", "--", "/bin/sh", "-c", "echo hi; exit 3");
    ASSERT_EQ_INT(o.exit_code, 3);
    const char *rec = last_line(o.out);
    ASSERT_EQ_INT(json_int(rec, "exit_code"), 3);
    ASSERT_EQ_INT(json_int(rec, "signal"), 0);
    ASSERT_CONTAINS(rec, "\"reason\":\"exited\"");
    ASSERT_GT_INT(json_num(rec, "wall_ms"), 0);
    ASSERT_GE_INT(json_num(rec, "cpu_ms"), 0);
    ASSERT_GT_INT(json_int(rec, "peak_memory_bytes"), 0);
    ASSERT_CONTAINS(rec, "\"sandbox_id\":\"sb-");
    sk_test_output_free(&o);
}

/* --image PATH: any rootfs directory (here a busybox one) is the root. */
TEST(rootfs_path_image)
{
    if (access("/bin/busybox", X_OK) != 0)
        FAIL("/bin/busybox missing: scripts/install-deps installs busybox-static");
    char dir[] = "/var/tmp/skiff-rootfs-XXXXXX";
    ASSERT_TRUE(mkdtemp(dir) != NULL);
    char cmd[PATH_MAX * 2];
    snprintf(cmd, sizeof(cmd),
             "mkdir -p %s/bin %s/etc && cp /bin/busybox %s/bin/ && ln -s busybox %s/bin/sh && "
             "echo 'NAME=skiff-test-rootfs' > %s/etc/os-release",
             dir, dir, dir, dir, dir);
    ASSERT_EQ_INT(system(cmd), 0);
    struct sk_test_output o;
    skiff_run(&o, "--image", dir, "--env", "PATH=/bin", "--", "/bin/sh", "-c",
              "cat /etc/os-release; busybox ls /; echo x > /tmp/w && echo wrote; id -u");
    ASSERT_EQ_INT(o.exit_code, 0);
    ASSERT_CONTAINS(o.out, "NAME=skiff-test-rootfs");
    ASSERT_CONTAINS(o.out, "wrote");
    ASSERT_NOT_CONTAINS(o.out, "usr"); /* the host's /usr is not there */
    /* writes went to the sandbox's upper layer, not into the image */
    snprintf(cmd, sizeof(cmd), "%s/tmp/w", dir);
    ASSERT_NE_INT(access(cmd, F_OK), 0);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ASSERT_EQ_INT(system(cmd), 0);
    sk_test_output_free(&o);
}

/* Writes into the host image land in the sandbox's own layer: the next
 * sandbox does not see them, and the host's /usr is read-only. */
TEST(writes_are_private_to_the_sandbox)
{
    struct sk_test_output o;
    skiff_run(&o, "--", "/bin/sh", "-c",
              "echo x > /etc/skiff-marker && echo etc-ok; touch /usr/skiff-marker 2>&1; exit 0");
    ASSERT_CONTAINS(o.out, "etc-ok");
    ASSERT_CONTAINS(o.out, "Read-only file system");
    sk_test_output_free(&o);
    ASSERT_NE_INT(access("/usr/skiff-marker", F_OK), 0);
    skiff_run(&o, "--", "/bin/sh", "-c", "test -e /etc/skiff-marker && echo leaked; exit 0");
    ASSERT_NOT_CONTAINS(o.out, "leaked");
    sk_test_output_free(&o);
}

TEST(sandbox_root_owns_its_root_and_tmp)
{
    struct sk_test_output o;
    skiff_run(&o, "--", "/bin/sh", "-c",
              "stat -c '%u %a %n' / /tmp /etc /usr/bin/sh; touch /newfile && echo root-writable");
    ASSERT_EQ_INT(o.exit_code, 0);
    ASSERT_CONTAINS(o.out, "0 755 /\n");
    ASSERT_CONTAINS(o.out, "0 1777 /tmp\n");
    ASSERT_CONTAINS(o.out, "0 755 /etc\n");
    ASSERT_CONTAINS(o.out, "root-writable");
    sk_test_output_free(&o);
}

TEST(help_lists_every_option)
{
    const char *argv[] = {skiff_bin(), "run", "--help", NULL};
    struct sk_test_output o;
    ASSERT_EQ_INT(sk_test_run(argv, NULL, test_env, 10, &o), 0);
    ASSERT_EQ_INT(o.exit_code, 0);
    static const char *const opts[] = {"--memory", "--cpu",     "--pids",  "--disk",  "--timeout",
                                       "--env",    "--workdir", "--image", "--mount", "--json"};
    for (size_t i = 0; i < SK_ARRAY_SIZE(opts); i++)
        ASSERT_CONTAINS(o.out, opts[i]);
    sk_test_output_free(&o);
}
