/* SPDX-License-Identifier: MIT */
/*
 * config: defaults, the config file, the environment and flags, their
 * precedence (flag > environment > file > default), and the exact message
 * for a bad value from each source. Every test starts from an environment
 * without any of the service's keys.
 */
#include "test-helpers.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "util.h"

/* Every variable config_load() reads. */
static const char *const env_keys[] = {
        "PYEXEC_CONFIG",
        "BIND",
        "PORT",
        "EXECUTION_TIMEOUT",
        "MEMORY_LIMIT",
        "MAX_OUTPUT_LENGTH",
        "MAX_CODE_LENGTH",
        "MAX_REQUEST_SIZE",
        "MAX_TESTS",
        "REQUEST_TIME_LIMIT",
        "RATE_LIMIT_WINDOW",
        "RATE_LIMIT_MAX",
        "MAX_CONCURRENT_EXECUTIONS",
        "EXECUTION_QUEUE_SIZE",
        "CONNECTION_TIMEOUT",
        "MAX_CONNECTIONS",
        "BREAKER_THRESHOLD",
        "BREAKER_COOLDOWN",
        "METRICS_ENABLED",
        "LOG_LEVEL",
        "CORS_ORIGIN",
        "API_KEYS",
        "API_KEYS_FILE",
        "PYEXEC_PYTHON",
};

#define KEY_A "key-aaaaaaaaaaaaaaaa"
#define KEY_B "key-bbbbbbbbbbbbbbbb"
#define KEY_C "key-cccccccccccccccc"

static char tmpdir[64];

static int group_setup(void **state) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/pyexec-test-config-XXXXXX");
        return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf -- '%s'", tmpdir);
        return system(cmd) == 0 ? 0 : -1;
}

static int clean_env(void **state) {
        for (size_t i = 0; i < ELEMENTSOF(env_keys); i++)
                unsetenv(env_keys[i]);
        return 0;
}

/* A file in the temporary directory; the path is static (one at a time). */
static const char *write_tmp(const char *name, const char *content) {
        static char path[128];
        int fd;

        snprintf(path, sizeof path, "%s/%s", tmpdir, name);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write_all(fd, content, strlen(content)), 0);
        assert_int_equal(close(fd), 0);
        return path;
}

struct load {
        struct config c;
        int r;
        char err[512];
        char *out; /* what was printed */
        size_t out_len;
};

/* config_load("serve", args...): NULL-terminated. */
static void load_v(struct load *l, const char *const *args) {
        char *argv[32];
        int argc = 0;
        FILE *out;

        argv[argc++] = (char *)"serve";
        for (; *args; args++) {
                assert_true(argc < 31);
                argv[argc++] = (char *)*args;
        }
        argv[argc] = NULL;
        memset(l, 0, sizeof *l);
        out = open_memstream(&l->out, &l->out_len);
        assert_non_null(out);
        l->r = config_load(&l->c, argc, argv, out, l->err, sizeof l->err);
        assert_int_equal(fclose(out), 0);
}
#define LOAD(l, ...) load_v((l), (const char *const[]){ __VA_ARGS__, NULL })
#define LOAD0(l) load_v((l), (const char *const[]){ NULL })

static void load_done(struct load *l) {
        config_done(&l->c);
        free(l->out);
}

/* Loading must fail with exactly this message. */
static void expect_fail_v(const char *message, const char *const *args) {
        struct load l;
        load_v(&l, args);
        if (l.r != -EINVAL)
                fail_msg("config_load returned %d, expected -EINVAL with '%s'", l.r, message);
        if (strcmp(l.err, message) != 0)
                fail_msg("message\n  got      '%s'\n  expected '%s'", l.err, message);
        load_done(&l);
}
#define EXPECT_FAIL(message, ...) expect_fail_v((message), (const char *const[]){ __VA_ARGS__, NULL })
#define EXPECT_FAIL0(message) expect_fail_v((message), (const char *const[]){ NULL })

/* The line of --print-config output for key, without the newline. */
static void assert_printed(const struct load *l, const char *line) {
        char want[256];
        snprintf(want, sizeof want, "%s\n", line);
        if (!strstr(l->out, want))
                fail_msg("'%s' not in the output:\n%s", line, l->out);
}

/* ---- sources and precedence ---- */

static void test_defaults(void **state) {
        struct load l;

        LOAD0(&l);
        assert_int_equal(l.r, 0);
        assert_string_equal(l.c.bind, "127.0.0.1");
        assert_int_equal(l.c.port, 3002);
        assert_int_equal(l.c.execution_timeout, 10000);
        assert_int_equal(l.c.memory_limit, 128);
        assert_int_equal(l.c.max_output_length, 10000);
        assert_int_equal(l.c.max_code_length, 50000);
        assert_int_equal(l.c.max_request_size, 2097152);
        assert_int_equal(l.c.max_tests, 50);
        assert_int_equal(l.c.request_time_limit, 30000); /* 3 x EXECUTION_TIMEOUT */
        assert_int_equal(l.c.rate_limit_window, 60000);
        assert_int_equal(l.c.rate_limit_max, 100);
        assert_int_equal(l.c.max_concurrent, 5);
        assert_int_equal(l.c.queue_size, 100);
        assert_int_equal(l.c.connection_timeout, 30);
        assert_int_equal(l.c.max_connections, 1024);
        assert_int_equal(l.c.breaker_threshold, 5);
        assert_int_equal(l.c.breaker_cooldown, 10000);
        assert_true(l.c.metrics_enabled);
        assert_int_equal(l.c.log_level, LOG_INFO);
        assert_string_equal(l.c.cors_origin, "");
        assert_string_equal(l.c.api_keys_file, "");
        assert_string_equal(l.c.python, "/usr/bin/python3");
        assert_int_equal(l.c.n_api_keys, 0);
        assert_null(l.c.config_file);
        for (size_t i = 0; i < ELEMENTSOF(l.c.source); i++)
                assert_int_equal(l.c.source[i], SOURCE_DEFAULT);
        assert_int_equal(l.out_len, 0); /* nothing printed */
        load_done(&l);
}

static void test_file(void **state) {
        struct load l;
        const char *path = write_tmp("file.conf", "# a comment\n"
                                                  "\n"
                                                  "PORT=4000\n"
                                                  "  MEMORY_LIMIT = 256  \n"
                                                  "LOG_LEVEL=DEBUG\r\n"
                                                  "\t# indented comment\n"
                                                  "METRICS_ENABLED=off\n"
                                                  "BIND=::1\n"
                                                  "CORS_ORIGIN=https://example.org");
        LOAD(&l, "--config", path);
        assert_int_equal(l.r, 0);
        assert_int_equal(l.c.port, 4000);
        assert_int_equal(l.c.memory_limit, 256);
        assert_int_equal(l.c.log_level, LOG_DEBUG);
        assert_false(l.c.metrics_enabled);
        assert_string_equal(l.c.bind, "::1");
        assert_string_equal(l.c.cors_origin, "https://example.org"); /* last line without '\n' */
        assert_string_equal(l.c.config_file, path);
        assert_int_equal(l.c.execution_timeout, 10000);
        load_done(&l);

        /* --config=FILE, and PYEXEC_CONFIG */
        LOAD(&l, "--config=" "/dev/null");
        assert_int_equal(l.r, 0);
        assert_string_equal(l.c.config_file, "/dev/null");
        load_done(&l);
        path = write_tmp("env.conf", "PORT=4001\n");
        setenv("PYEXEC_CONFIG", path, 1);
        LOAD0(&l);
        assert_int_equal(l.r, 0);
        assert_int_equal(l.c.port, 4001);
        load_done(&l);
        /* --config wins over PYEXEC_CONFIG */
        LOAD(&l, "--config", write_tmp("flag.conf", "PORT=4002\n"));
        assert_int_equal(l.r, 0);
        assert_int_equal(l.c.port, 4002);
        load_done(&l);
}

static void test_precedence(void **state) {
        struct load l;
        const char *path = write_tmp("prec.conf", "PORT=4000\nMEMORY_LIMIT=256\nMAX_TESTS=7\n");

        /* env over file */
        setenv("PORT", "5000", 1);
        setenv("MEMORY_LIMIT", "512", 1);
        LOAD(&l, "--config", path);
        assert_int_equal(l.r, 0);
        assert_int_equal(l.c.port, 5000);
        assert_int_equal(l.c.memory_limit, 512);
        assert_int_equal(l.c.max_tests, 7);
        load_done(&l);

        /* flag over env over file, whatever the order of the flags */
        LOAD(&l, "--port", "6000", "--config", path);
        assert_int_equal(l.r, 0);
        assert_int_equal(l.c.port, 6000);
        assert_int_equal(l.c.memory_limit, 512);
        assert_int_equal(l.c.max_tests, 7);
        assert_int_equal(l.c.execution_timeout, 10000);
        load_done(&l);

        /* the sources, as --print-config shows them */
        setenv("EXECUTION_TIMEOUT", "2000", 1);
        LOAD(&l, "--config", path, "--port=6000", "--print-config");
        assert_int_equal(l.r, 1);
        assert_printed(&l, "PORT=6000  # flag");
        assert_printed(&l, "MEMORY_LIMIT=512  # environment");
        assert_printed(&l, "EXECUTION_TIMEOUT=2000  # environment");
        assert_printed(&l, "MAX_TESTS=7  # file");
        assert_printed(&l, "MAX_CODE_LENGTH=50000  # default");
        assert_printed(&l, "METRICS_ENABLED=true  # default");
        assert_printed(&l, "LOG_LEVEL=info  # default");
        assert_printed(&l, "BIND=127.0.0.1  # default");
        assert_printed(&l, "CORS_ORIGIN=  # default");
        char first[256];
        snprintf(first, sizeof first, "# config file: %s\n", path);
        assert_true(strncmp(l.out, first, strlen(first)) == 0);
        load_done(&l);
}

static void test_flag_forms(void **state) {
        struct load l;

        LOAD(&l, "--port=1234", "--execution-timeout", "500", "--metrics-enabled=false", "--cors-origin=", "--log-level",
             "warn", "--max-concurrent-executions", "2", "--execution-queue-size=0", "--bind", "0.0.0.0");
        assert_int_equal(l.r, 0);
        assert_int_equal(l.c.port, 1234);
        assert_int_equal(l.c.execution_timeout, 500);
        assert_false(l.c.metrics_enabled);
        assert_string_equal(l.c.cors_origin, "");
        assert_int_equal(l.c.log_level, LOG_WARN);
        assert_int_equal(l.c.max_concurrent, 2);
        assert_int_equal(l.c.queue_size, 0);
        assert_string_equal(l.c.bind, "0.0.0.0");
        load_done(&l);

        /* a value may itself start with dashes in the separate form */
        LOAD(&l, "--cors-origin", "--weird");
        assert_int_equal(l.r, 0);
        assert_string_equal(l.c.cors_origin, "--weird");
        load_done(&l);

        /* the last of a repeated flag wins */
        LOAD(&l, "--port=1", "--port", "2");
        assert_int_equal(l.r, 0);
        assert_int_equal(l.c.port, 2);
        load_done(&l);

        /* booleans and levels, case-insensitive */
        static const char *const yes[] = { "true", "1", "yes", "on", "TRUE", "On" };
        static const char *const no[] = { "false", "0", "no", "off", "False", "OFF" };
        for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
                LOAD(&l, "--metrics-enabled", no[i]);
                assert_int_equal(l.r, 0);
                assert_false(l.c.metrics_enabled);
                load_done(&l);
                setenv("METRICS_ENABLED", "false", 1);
                LOAD(&l, "--metrics-enabled", yes[i]);
                assert_int_equal(l.r, 0);
                assert_true(l.c.metrics_enabled);
                load_done(&l);
                unsetenv("METRICS_ENABLED");
        }
        LOAD(&l, "--log-level=ERROR");
        assert_int_equal(l.r, 0);
        assert_int_equal(l.c.log_level, LOG_ERROR);
        load_done(&l);
}

static void test_help(void **state) {
        struct load l;

        LOAD(&l, "--help");
        assert_int_equal(l.r, 2);
        assert_non_null(strstr(l.out, "usage: pyexec serve"));
        assert_non_null(strstr(l.out, "--execution-timeout"));
        assert_non_null(strstr(l.out, "EXECUTION_TIMEOUT"));
        load_done(&l);
        LOAD(&l, "--port", "1", "-h");
        assert_int_equal(l.r, 2);
        load_done(&l);
}

/* ---- bad values: each source names the key and where it came from ---- */

static void test_invalid_values(void **state) {
        char msg[512];
        const char *path;

        /* flag */
        EXPECT_FAIL("PORT (--port) must be a whole number between 1 and 65535, got '70000'", "--port=70000");
        EXPECT_FAIL("PORT (--port) must be a whole number between 1 and 65535, got ''", "--port=");
        EXPECT_FAIL("PORT (--port) must be a whole number between 1 and 65535, got '-1'", "--port", "-1");
        EXPECT_FAIL("EXECUTION_TIMEOUT (--execution-timeout) must be a whole number between 1 and 600000, got '600001'",
                    "--execution-timeout", "600001");
        EXPECT_FAIL("MEMORY_LIMIT (--memory-limit) must be a whole number between 16 and 4096, got '15'",
                    "--memory-limit=15");
        EXPECT_FAIL("MAX_REQUEST_SIZE (--max-request-size) must be a whole number between 1024 and 268435456, got '1023'",
                    "--max-request-size=1023");
        EXPECT_FAIL("LOG_LEVEL (--log-level) must be one of debug, info, warn, error, got 'loud'", "--log-level", "loud");
        EXPECT_FAIL("METRICS_ENABLED (--metrics-enabled) must be true or false, got 'maybe'", "--metrics-enabled=maybe");
        EXPECT_FAIL("BIND (--bind) must be an IPv4 or IPv6 address, got 'localhost'", "--bind=localhost");
        EXPECT_FAIL("ZYGOTE_HUGE_PAGES (--zygote-huge-pages) must be auto, true or false, got 'maybe'",
                    "--zygote-huge-pages=maybe");
        EXPECT_FAIL("ZYGOTE_PREFAULT (--zygote-prefault) must be auto, true or false, got ''", "--zygote-prefault=");
        EXPECT_FAIL("WARM_POOL_SHRINK_AFTER (--warm-pool-shrink-after) must be a whole number between 1 and 86400, got "
                    "'0'",
                    "--warm-pool-shrink-after=0");

        /* environment */
        setenv("PORT", "abc", 1);
        EXPECT_FAIL0("PORT (environment variable PORT) must be a whole number between 1 and 65535, got 'abc'");
        /* a bad environment value stops start-up even with a flag for it */
        EXPECT_FAIL("PORT (environment variable PORT) must be a whole number between 1 and 65535, got 'abc'", "--port=1");
        setenv("PORT", " 80", 1);
        EXPECT_FAIL0("PORT (environment variable PORT) must be a whole number between 1 and 65535, got ' 80'");
        unsetenv("PORT");
        setenv("METRICS_ENABLED", "maybe", 1);
        EXPECT_FAIL0("METRICS_ENABLED (environment variable METRICS_ENABLED) must be true or false, got 'maybe'");
        unsetenv("METRICS_ENABLED");
        setenv("CORS_ORIGIN", "\xff", 1);
        EXPECT_FAIL0("CORS_ORIGIN (environment variable CORS_ORIGIN) must be valid UTF-8 of at most 4096 bytes");
        unsetenv("CORS_ORIGIN");
        setenv("RATE_LIMIT_WINDOW", "0", 1);
        EXPECT_FAIL0("RATE_LIMIT_WINDOW (environment variable RATE_LIMIT_WINDOW) must be a whole number between 1 and "
                     "86400000, got '0'");
        unsetenv("RATE_LIMIT_WINDOW");

        /* file: the path and the line */
        path = write_tmp("bad.conf", "PORT=4000\n# fine so far\nBIND=localhost\n");
        snprintf(msg, sizeof msg, "BIND (%s line 3) must be an IPv4 or IPv6 address, got 'localhost'", path);
        EXPECT_FAIL(msg, "--config", path);
        path = write_tmp("bad2.conf", "MAX_TESTS=1001\n");
        snprintf(msg, sizeof msg, "MAX_TESTS (%s line 1) must be a whole number between 1 and 1000, got '1001'", path);
        EXPECT_FAIL(msg, "--config", path);

        /* the interpreter must be an absolute path */
        EXPECT_FAIL("PYEXEC_PYTHON must be an absolute path under /usr, got 'python3'", "--pyexec-python", "python3");
}

/* REQUEST_TIME_LIMIT: from every source; 0 (the default) derives it from
 * EXECUTION_TIMEOUT; below EXECUTION_TIMEOUT is refused, since the first
 * case alone may take that long. */
static void test_request_time_limit(void **state) {
        struct load l;
        const char *path;

        LOAD(&l, "--execution-timeout", "2000", "--print-config");
        assert_int_equal(l.r, 1);
        assert_int_equal(l.c.request_time_limit, 6000);
        assert_printed(&l, "REQUEST_TIME_LIMIT=6000  # default");
        load_done(&l);
        LOAD(&l, "--request-time-limit=0");
        assert_int_equal(l.r, 0);
        assert_int_equal(l.c.request_time_limit, 30000);
        load_done(&l);

        setenv("REQUEST_TIME_LIMIT", "45000", 1);
        LOAD(&l, "--print-config");
        assert_int_equal(l.r, 1);
        assert_int_equal(l.c.request_time_limit, 45000);
        assert_printed(&l, "REQUEST_TIME_LIMIT=45000  # environment");
        load_done(&l);
        /* flag over environment; equal to EXECUTION_TIMEOUT is enough */
        LOAD(&l, "--request-time-limit", "10000");
        assert_int_equal(l.r, 0);
        assert_int_equal(l.c.request_time_limit, 10000);
        load_done(&l);
        unsetenv("REQUEST_TIME_LIMIT");
        path = write_tmp("rtl.conf", "REQUEST_TIME_LIMIT=20000\nEXECUTION_TIMEOUT=20000\n");
        LOAD(&l, "--config", path);
        assert_int_equal(l.r, 0);
        assert_int_equal(l.c.request_time_limit, 20000);
        load_done(&l);

        /* below EXECUTION_TIMEOUT, wherever each came from */
        EXPECT_FAIL("REQUEST_TIME_LIMIT is 9999 ms (flag), less than EXECUTION_TIMEOUT, 10000 ms (default), the time "
                    "one run may take: raise REQUEST_TIME_LIMIT or lower EXECUTION_TIMEOUT (REQUEST_TIME_LIMIT=0 is "
                    "3 x EXECUTION_TIMEOUT)",
                    "--request-time-limit=9999");
        setenv("EXECUTION_TIMEOUT", "60000", 1);
        path = write_tmp("rtl2.conf", "REQUEST_TIME_LIMIT=20000\n");
        EXPECT_FAIL("REQUEST_TIME_LIMIT is 20000 ms (file), less than EXECUTION_TIMEOUT, 60000 ms (environment), the "
                    "time one run may take: raise REQUEST_TIME_LIMIT or lower EXECUTION_TIMEOUT (REQUEST_TIME_LIMIT=0 "
                    "is 3 x EXECUTION_TIMEOUT)",
                    "--config", path);
        /* the derived default follows a raised EXECUTION_TIMEOUT */
        LOAD0(&l);
        assert_int_equal(l.r, 0);
        assert_int_equal(l.c.request_time_limit, 180000);
        load_done(&l);
        unsetenv("EXECUTION_TIMEOUT");

        /* range and form */
        EXPECT_FAIL("REQUEST_TIME_LIMIT (--request-time-limit) must be a whole number between 0 and 3600000, got "
                    "'3600001'",
                    "--request-time-limit", "3600001");
        setenv("REQUEST_TIME_LIMIT", "30s", 1);
        EXPECT_FAIL0("REQUEST_TIME_LIMIT (environment variable REQUEST_TIME_LIMIT) must be a whole number between 0 "
                     "and 3600000, got '30s'");
        unsetenv("REQUEST_TIME_LIMIT");
        LOAD(&l, "--help");
        assert_non_null(strstr(l.out, "--request-time-limit"));
        assert_non_null(strstr(l.out, "REQUEST_TIME_LIMIT"));
        load_done(&l);
}

static void test_policies_and_warm_keys(void **state) {
        struct load l;
        const char *path, *line;
        char msg[512];

        /* Defaults: warm, education by default, both built-ins allowed. */
        LOAD0(&l);
        assert_int_equal(l.r, 0);
        assert_true(l.c.warm);
        assert_string_equal(l.c.default_policy, "education");
        line = config_policy_line(&l.c, "education");
        assert_non_null(line);
        assert_true(strncmp(line, "name=education;imports=listed;writes=workdir;", 45) == 0);
        assert_non_null(config_policy_line(&l.c, "permissive"));
        assert_null(config_policy_line(&l.c, "strict"));
        load_done(&l);

        /* The techniques whose worth depends on the host: auto by default
         * (decided at start), or forced either way. */
        LOAD0(&l);
        assert_int_equal(l.r, 0);
        assert_int_equal(l.c.zygote_huge_pages, PYEXEC_CHOICE_AUTO);
        assert_int_equal(l.c.zygote_prefault, PYEXEC_CHOICE_AUTO);
        assert_int_equal(l.c.warm_pool, 0);
        assert_int_equal(l.c.warm_pool_shrink_after, 60);
        load_done(&l);
        LOAD(&l, "--zygote-huge-pages", "TRUE", "--zygote-prefault=off");
        assert_int_equal(l.r, 0);
        assert_int_equal(l.c.zygote_huge_pages, PYEXEC_CHOICE_ON);
        assert_int_equal(l.c.zygote_prefault, PYEXEC_CHOICE_OFF);
        load_done(&l);
        LOAD(&l, "--zygote-huge-pages", "false", "--zygote-prefault=Auto");
        assert_int_equal(l.r, 0);
        assert_int_equal(l.c.zygote_huge_pages, PYEXEC_CHOICE_OFF);
        assert_int_equal(l.c.zygote_prefault, PYEXEC_CHOICE_AUTO);
        load_done(&l);

        /* ZYGOTE_PREIMPORT: the lean default, an operator's list, or none. */
        LOAD0(&l);
        assert_int_equal(l.r, 0);
        assert_string_equal(l.c.zygote_preimport, ZYGOTE_PREIMPORT_DEFAULT);
        assert_null(strstr(l.c.zygote_preimport, "PIL"));
        assert_null(strstr(l.c.zygote_preimport, "threading"));
        load_done(&l);
        LOAD(&l, "--zygote-preimport", " math , PIL.Image,os.path");
        assert_int_equal(l.r, 0);
        assert_string_equal(l.c.zygote_preimport, " math , PIL.Image,os.path");
        load_done(&l);
        LOAD(&l, "--zygote-preimport", "");
        assert_int_equal(l.r, 0);
        load_done(&l);

        /* --cold is --execution-mode cold. */
        LOAD(&l, "--cold");
        assert_int_equal(l.r, 0);
        assert_false(l.c.warm);
        load_done(&l);

        /* An operator's policy from the environment and one from the file;
         * only those in POLICIES may be picked. */
        setenv("POLICY_DATA", "base=education; allow=sqlite3,xml.etree; deny=random", 1);
        path = write_tmp("pol.conf", "POLICY_LOOSE=imports=all\nPOLICIES=education, data\n");
        LOAD(&l, "--config", path);
        assert_int_equal(l.r, 0);
        line = config_policy_line(&l.c, "data");
        assert_non_null(line);
        assert_non_null(strstr(line, "name=data;imports=listed;writes=workdir;"));
        assert_non_null(strstr(line, ",sqlite3,xml.etree"));
        assert_non_null(strstr(line, ",random;deny-events="));
        assert_null(config_policy_line(&l.c, "loose")); /* defined, not listed */
        assert_null(config_policy_line(&l.c, "permissive"));
        load_done(&l);
        unsetenv("POLICY_DATA");

        /* Errors name the key and where it came from. */
        setenv("POLICY_BAD", "base=nope", 1);
        EXPECT_FAIL0("POLICY_BAD (environment variable POLICY_BAD): base: no policy named 'nope' is defined before this one");
        setenv("POLICY_BAD", "allow=os; base=education", 1);
        EXPECT_FAIL0("POLICY_BAD (environment variable POLICY_BAD): base must be the first item (it replaces what comes "
                     "before it)");
        setenv("POLICY_BAD", "colour=blue", 1);
        EXPECT_FAIL0("POLICY_BAD (environment variable POLICY_BAD): unknown item 'colour' (known: base, allow, deny, "
                     "deny-events, allow-events, imports, writes)");
        unsetenv("POLICY_BAD");
        EXPECT_FAIL("POLICIES names 'strict', which is not defined (built-in: education, permissive, science; define "
                    "more with POLICY_<NAME>=spec)",
                    "--policies", "education,strict");
        EXPECT_FAIL("DEFAULT_POLICY 'permissive' is not among POLICIES (education)", "--policies", "education",
                    "--default-policy", "permissive");
        EXPECT_FAIL("POLICIES must list policy names separated by commas, got 'education,,'", "--policies",
                    "education,,");
        EXPECT_FAIL("EXECUTION_MODE must be warm or cold, got 'hot'", "--execution-mode", "hot");
        /* ZYGOTE_PREIMPORT: dotted module names separated by commas. */
        EXPECT_FAIL("ZYGOTE_PREIMPORT must list module names separated by commas, got ',' in 'math,,re'",
                    "--zygote-preimport", "math,,re");
        EXPECT_FAIL("ZYGOTE_PREIMPORT must list module names separated by commas, got 'os..path' in 'os..path'",
                    "--zygote-preimport", "os..path");
        EXPECT_FAIL("ZYGOTE_PREIMPORT must list module names separated by commas, got '9lives' in 'math, 9lives'",
                    "--zygote-preimport", "math, 9lives");
        EXPECT_FAIL("ZYGOTE_PREIMPORT must list module names separated by commas, got 'a/b' in 'a/b'",
                    "--zygote-preimport", "a/b");
        EXPECT_FAIL("ZYGOTE_PREIMPORT ends with a comma: 'math,'", "--zygote-preimport", "math,");
        /* The zygote runs on the host's file system: nothing that writes
         * there at import. */
        EXPECT_FAIL("ZYGOTE_PREIMPORT must not list 'matplotlib.pyplot': it writes its cache at import, and the "
                    "zygote runs on the host's file system",
                    "--zygote-preimport", "numpy, matplotlib.pyplot");
        path = write_tmp("pol2.conf", "POLICY_=base=education\n");
        snprintf(msg, sizeof msg, "%s line 1: 'POLICY_' needs a policy name of 1-31 characters after POLICY_", path);
        EXPECT_FAIL(msg, "--config", path);
}

static void test_file_errors(void **state) {
        char msg[512];
        const char *path;

        path = write_tmp("unknown.conf", "PORT=4000\n\nPROT=4001\n");
        snprintf(msg, sizeof msg, "%s line 3: unknown key 'PROT'", path);
        EXPECT_FAIL(msg, "--config", path);

        path = write_tmp("lower.conf", "port=4000\n");
        snprintf(msg, sizeof msg, "%s line 1: unknown key 'port'", path);
        EXPECT_FAIL(msg, "--config", path);

        path = write_tmp("noeq.conf", "# ok\nPORT 4000\n");
        snprintf(msg, sizeof msg, "%s line 2: expected KEY=value", path);
        EXPECT_FAIL(msg, "--config", path);

        snprintf(msg, sizeof msg, "cannot read the config file %s/missing.conf: No such file or directory", tmpdir);
        char missing[128];
        snprintf(missing, sizeof missing, "%s/missing.conf", tmpdir);
        EXPECT_FAIL(msg, "--config", missing);

        setenv("PYEXEC_CONFIG", missing, 1);
        EXPECT_FAIL0(msg);
        unsetenv("PYEXEC_CONFIG");

        EXPECT_FAIL("--config needs a file", "--port=1", "--config");
}

static void test_arguments(void **state) {
        EXPECT_FAIL("unknown option '--prot' (see pyexec serve --help)", "--prot", "1");
        EXPECT_FAIL("unknown option '--prot' (see pyexec serve --help)", "--prot=1");
        EXPECT_FAIL("unknown option '--PORT' (see pyexec serve --help)", "--PORT=1");
        EXPECT_FAIL("unknown option '--' (see pyexec serve --help)", "--");
        EXPECT_FAIL("unexpected argument 'foo' (see pyexec serve --help)", "foo");
        EXPECT_FAIL("unexpected argument '-p' (see pyexec serve --help)", "-p", "1");
        EXPECT_FAIL("option '--port' needs a value", "--port");
        EXPECT_FAIL("option '--port' needs a value", "--log-level=info", "--port");
}

/* ---- API keys ---- */

static void test_api_keys(void **state) {
        struct load l;
        const char *path;

        setenv("API_KEYS", " " KEY_A " ,," KEY_B ",", 1);
        LOAD0(&l);
        assert_int_equal(l.r, 0);
        assert_int_equal(l.c.n_api_keys, 2);
        assert_string_equal(l.c.api_keys[0], KEY_A);
        assert_string_equal(l.c.api_keys[1], KEY_B);
        load_done(&l);

        /* the file: one per line, comments, blank lines and CRLF */
        path = write_tmp("keys", "# operators\n" KEY_C "\r\n\n   \n" KEY_A "\n");
        setenv("API_KEYS_FILE", path, 1);
        LOAD0(&l);
        assert_int_equal(l.r, 0);
        assert_int_equal(l.c.n_api_keys, 4); /* both sources */
        assert_string_equal(l.c.api_keys[2], KEY_C);
        assert_string_equal(l.c.api_keys[3], KEY_A);
        assert_string_equal(l.c.api_keys_file, path);
        load_done(&l);
        unsetenv("API_KEYS");

        /* the file alone, named by a flag */
        unsetenv("API_KEYS_FILE");
        LOAD(&l, "--api-keys-file", path);
        assert_int_equal(l.r, 0);
        assert_int_equal(l.c.n_api_keys, 2);
        load_done(&l);

        /* keys from the config file and a flag */
        LOAD(&l, "--config", write_tmp("keys.conf", "API_KEYS=" KEY_A "," KEY_B "\n"), "--api-keys=" KEY_C);
        assert_int_equal(l.r, 0);
        assert_int_equal(l.c.n_api_keys, 1); /* the flag replaces the file's list */
        assert_string_equal(l.c.api_keys[0], KEY_C);
        load_done(&l);

        /* exactly 16 characters: the shortest accepted */
        LOAD(&l, "--api-keys", "0123456789abcdef");
        assert_int_equal(l.r, 0);
        assert_int_equal(l.c.n_api_keys, 1);
        load_done(&l);
}

static void test_api_keys_rejected(void **state) {
        char msg[512], missing[128];
        const char *path;

        setenv("API_KEYS", KEY_A ",short", 1);
        EXPECT_FAIL0("API_KEYS: API keys must be at least 16 characters");
        setenv("API_KEYS", "0123456789abcde", 1); /* 15 */
        EXPECT_FAIL0("API_KEYS: API keys must be at least 16 characters");
        setenv("API_KEYS", "key with a space inside", 1);
        EXPECT_FAIL0("API_KEYS: API keys must be printable ASCII without spaces");
        setenv("API_KEYS", "key-\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 1);
        EXPECT_FAIL0("API_KEYS: API keys must be printable ASCII without spaces");
        unsetenv("API_KEYS");

        path = write_tmp("shortkeys", KEY_A "\ntooshort\n");
        setenv("API_KEYS_FILE", path, 1);
        EXPECT_FAIL0("API_KEYS_FILE line 2: API keys must be at least 16 characters");
        snprintf(missing, sizeof missing, "%s/nokeys", tmpdir);
        setenv("API_KEYS_FILE", missing, 1);
        snprintf(msg, sizeof msg, "API_KEYS_FILE: cannot read %s: No such file or directory", missing);
        EXPECT_FAIL0(msg);
        unsetenv("API_KEYS_FILE");
}

/* A keys file's line: the key, then its own limits and whether it is
 * trusted to name end users; a plain line keeps the RATE_LIMIT_* defaults. */
static void test_api_key_options(void **state) {
        struct load l;
        const char *path = write_tmp("optkeys", KEY_A "\n" KEY_B " max=500\twindow=1000\n" KEY_C
                                                      " trusted max=10000 user-max=20 user-window=30000 \n");

        setenv("API_KEYS", "key-dddddddddddddddd", 1);
        LOAD(&l, "--api-keys-file", path, "--rate-limit-max", "7", "--rate-limit-window", "9000");
        assert_int_equal(l.r, 0);
        assert_int_equal(l.c.n_api_keys, 4);
        /* API_KEYS: the defaults */
        assert_int_equal(l.c.api_key_opts[0].max, 7);
        assert_int_equal(l.c.api_key_opts[0].window_ms, 9000);
        assert_false(l.c.api_key_opts[0].trusted);
        /* a plain line: the defaults, and the key is the line */
        assert_string_equal(l.c.api_keys[1], KEY_A);
        assert_int_equal(l.c.api_key_opts[1].max, 7);
        assert_int_equal(l.c.api_key_opts[1].window_ms, 9000);
        assert_false(l.c.api_key_opts[1].trusted);
        /* the label: 8 hex digits of the key's SHA-256, not the key */
        assert_string_equal(l.c.api_key_opts[1].label, "44bafdb1");
        assert_string_equal(l.c.api_keys[2], KEY_B);
        assert_int_equal(l.c.api_key_opts[2].max, 500);
        assert_int_equal(l.c.api_key_opts[2].window_ms, 1000);
        assert_false(l.c.api_key_opts[2].trusted);
        assert_string_equal(l.c.api_keys[3], KEY_C);
        assert_int_equal(l.c.api_key_opts[3].max, 10000);
        assert_int_equal(l.c.api_key_opts[3].window_ms, 9000);
        assert_true(l.c.api_key_opts[3].trusted);
        assert_int_equal(l.c.api_key_opts[3].user_max, 20);
        assert_int_equal(l.c.api_key_opts[3].user_window_ms, 30000);
        load_done(&l);
        unsetenv("API_KEYS");

        /* trusted alone: each user gets RATE_LIMIT_MAX per RATE_LIMIT_WINDOW */
        LOAD(&l, "--api-keys-file", write_tmp("trustkeys", KEY_A " trusted\n"));
        assert_int_equal(l.r, 0);
        assert_true(l.c.api_key_opts[0].trusted);
        assert_int_equal(l.c.api_key_opts[0].user_max, 100);
        assert_int_equal(l.c.api_key_opts[0].user_window_ms, 60000);
        load_done(&l);
}

static void test_api_key_options_rejected(void **state) {
        setenv("API_KEYS_FILE", write_tmp("badopt1", KEY_A "\n" KEY_B " limit=5\n"), 1);
        EXPECT_FAIL0("API_KEYS_FILE line 2: unknown key option 'limit=5': allowed are max=N, window=MS, trusted, "
                     "user-max=N, user-window=MS");
        setenv("API_KEYS_FILE", write_tmp("badopt2", KEY_A " max\n"), 1);
        EXPECT_FAIL0("API_KEYS_FILE line 1: unknown key option 'max': allowed are max=N, window=MS, trusted, "
                     "user-max=N, user-window=MS");
        setenv("API_KEYS_FILE", write_tmp("badopt3", KEY_A " window=0\n"), 1);
        EXPECT_FAIL0("API_KEYS_FILE line 1: window must be a whole number from 1 to 86400000, got '0'");
        setenv("API_KEYS_FILE", write_tmp("badopt4", KEY_A " max=lots\n"), 1);
        EXPECT_FAIL0("API_KEYS_FILE line 1: max must be a whole number from 0 to 100000000, got 'lots'");
        setenv("API_KEYS_FILE", write_tmp("badopt5", KEY_A " user-max=5\n"), 1);
        EXPECT_FAIL0("API_KEYS_FILE line 1: user-max and user-window are for a trusted key: add 'trusted'");
        /* the key's length is checked on the key alone, not the line */
        setenv("API_KEYS_FILE", write_tmp("badopt6", "shortkey max=1000000\n"), 1);
        EXPECT_FAIL0("API_KEYS_FILE line 1: API keys must be at least 16 characters");
        /* options are for the keys file: in API_KEYS a space is still refused */
        unsetenv("API_KEYS_FILE");
        setenv("API_KEYS", KEY_A " trusted", 1);
        EXPECT_FAIL0("API_KEYS: API keys must be printable ASCII without spaces");
        unsetenv("API_KEYS");
}

static void test_print_config_hides_keys(void **state) {
        struct load l;
        const char *keyfile = write_tmp("printkeys", KEY_C "\n");
        const char *conf = write_tmp("print.conf", "API_KEYS=" KEY_B "\n");

        setenv("API_KEYS", KEY_A, 1);
        LOAD(&l, "--print-config", "--config", conf, "--api-keys-file", keyfile);
        assert_int_equal(l.r, 1);
        /* the keys themselves are nowhere; their count is */
        assert_null(strstr(l.out, KEY_A));
        assert_null(strstr(l.out, KEY_B));
        assert_null(strstr(l.out, KEY_C));
        assert_null(strstr(l.out, "key-"));
        assert_printed(&l, "API_KEYS=<2 keys, not shown>  # environment");
        char line[256];
        snprintf(line, sizeof line, "API_KEYS_FILE=%s  # flag", keyfile);
        assert_printed(&l, line);
        /* every key is there, one per line */
        assert_printed(&l, "PORT=3002  # default");
        assert_printed(&l, "PYEXEC_PYTHON=/usr/bin/python3  # default");
        load_done(&l);

        unsetenv("API_KEYS");
        LOAD(&l, "--print-config", "--api-keys", KEY_A);
        assert_int_equal(l.r, 1);
        assert_null(strstr(l.out, KEY_A));
        assert_printed(&l, "API_KEYS=<1 key, not shown>  # flag");
        load_done(&l);

        LOAD(&l, "--print-config");
        assert_printed(&l, "API_KEYS=<0 keys, not shown>  # default");
        load_done(&l);
}

static void test_done_resets(void **state) {
        struct config c;
        char err[256];
        FILE *out = fopen("/dev/null", "w");
        char *argv[] = { (char *)"serve", (char *)"--api-keys=" KEY_A, NULL };

        assert_non_null(out);
        assert_int_equal(config_load(&c, 2, argv, out, err, sizeof err), 0);
        assert_int_equal(c.n_api_keys, 1);
        config_done(&c);
        assert_null(c.api_keys);
        assert_int_equal(c.n_api_keys, 0);
        assert_null(c.bind);
        assert_null(c.python);
        /* twice is harmless */
        config_done(&c);
        fclose(out);
}

#define T(f) cmocka_unit_test_setup(f, clean_env)

int main(void) {
        const struct CMUnitTest tests[] = {
                T(test_defaults),
                T(test_file),
                T(test_precedence),
                T(test_flag_forms),
                T(test_help),
                T(test_invalid_values),
                T(test_request_time_limit),
                T(test_file_errors),
                T(test_arguments),
                T(test_policies_and_warm_keys),
                T(test_api_keys),
                T(test_api_keys_rejected),
                T(test_api_key_options),
                T(test_api_key_options_rejected),
                T(test_print_config_hides_keys),
                T(test_done_resets),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
