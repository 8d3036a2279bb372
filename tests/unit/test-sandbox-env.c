/* SPDX-License-Identifier: MIT */
/*
 * sandbox-env.c: the environment every program gets, on the cold and the
 * warm path alike, agrees with the generated /etc (user name, home).
 */
#include "test-helpers.h"

#include <string.h>

#include "sandbox-env.h"

static const char *env_get(const char *name) {
        size_t n = strlen(name);
        for (size_t i = 0; sandbox_env[i]; i++)
                if (strncmp(sandbox_env[i], name, n) == 0 && sandbox_env[i][n] == '=')
                        return sandbox_env[i] + n + 1;
        return NULL;
}

static void test_env_is_fixed(void **state) {
        static const char *const names[] = { "PATH",
                                             "HOME",
                                             "LANG",
                                             "USER",
                                             "LOGNAME",
                                             "OPENBLAS_NUM_THREADS",
                                             "OMP_NUM_THREADS",
                                             "MKL_NUM_THREADS",
                                             "NUMEXPR_NUM_THREADS",
                                             "MPLBACKEND",
                                             "MPLCONFIGDIR" };
        size_t count = 0;
        (void)state;
        while (sandbox_env[count])
                count++;
        assert_int_equal(count, SANDBOX_ENV_COUNT);
        for (size_t i = 0; i < SANDBOX_ENV_COUNT; i++)
                assert_non_null(env_get(names[i]));
        assert_string_equal(env_get("HOME"), SANDBOX_WORKDIR);
        assert_string_equal(env_get("LANG"), "C.UTF-8");
        /* One thread per numerical library; matplotlib without a display,
         * its cache somewhere writable. */
        for (size_t i = 5; i < 9; i++)
                assert_string_equal(env_get(names[i]), "1");
        assert_string_equal(env_get("MPLBACKEND"), "Agg");
        assert_string_equal(env_get("MPLCONFIGDIR"), "/tmp/matplotlib");
}

static void test_env_agrees_with_passwd(void **state) {
        struct mount_file etc[5];
        char passwd[512], group[256], hosts[160], want[128];
        (void)state;
        sandbox_fill_etc(etc, passwd, sizeof passwd, group, sizeof group, hosts, sizeof hosts, SANDBOX_INNER_ID,
                         SANDBOX_INNER_ID);
        snprintf(want, sizeof want, "\n%s:x:%d:%d:%s:%s:", env_get("USER"), SANDBOX_INNER_ID, SANDBOX_INNER_ID,
                 env_get("LOGNAME"), env_get("HOME"));
        assert_non_null(strstr(passwd, want));
        assert_string_equal(etc[3].name, "hostname");
        assert_memory_equal(etc[3].data, SANDBOX_HOSTNAME "\n", etc[3].len);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_env_is_fixed),
                cmocka_unit_test(test_env_agrees_with_passwd),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
