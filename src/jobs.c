/* SPDX-License-Identifier: MIT */
#include "jobs.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <yaml.h>

#include "result.h"
#include "sha256.h"

#define JOB_MAX_PARAMS 32
#define JOB_MAX_ARGS 128
#define YAML_MAX_DEPTH 16
#define JOB_MAX_OUTPUT_FILES 10000

const char *job_param_type_to_string(enum job_param_type t) {
        static const char *const names[_JOB_PARAM_MAX] = {
                [JOB_INPUT_FILE] = "input_file", [JOB_OUTPUT_FILE] = "output_file",
                [JOB_OUTPUT_DIR] = "output_dir", [JOB_ENUM] = "enum",
                [JOB_INT] = "int",               [JOB_NUMBER] = "number",
                [JOB_BOOL] = "bool",             [JOB_STRING] = "string",
        };
        return t < _JOB_PARAM_MAX ? names[t] : "?";
}

/* ---- YAML to JSON ------------------------------------------------------- */

/* Every scalar becomes a JSON string; the schema below decides what it must
 * be. Duplicate keys are refused, as in the HTTP API. */
/* where: the dotted path of node ("jobs.compose.params"), for messages. */
static json_t *yaml_to_json(yaml_document_t *doc, yaml_node_t *node, int depth, const char *where, char *err,
                            size_t errlen) {
        json_t *o;
        if (!node || depth > YAML_MAX_DEPTH) {
                snprintf(err, errlen, "nested deeper than %d levels", YAML_MAX_DEPTH);
                return NULL;
        }
        switch (node->type) {
        case YAML_SCALAR_NODE:
                return json_stringn((const char *)node->data.scalar.value, node->data.scalar.length);
        case YAML_SEQUENCE_NODE:
                o = json_array();
                for (yaml_node_item_t *i = node->data.sequence.items.start; o && i < node->data.sequence.items.top; i++) {
                        json_t *v = yaml_to_json(doc, yaml_document_get_node(doc, *i), depth + 1, where, err, errlen);
                        if (!v) {
                                json_decref(o);
                                return NULL;
                        }
                        json_array_append_new(o, v);
                }
                return o;
        case YAML_MAPPING_NODE:
                o = json_object();
                for (yaml_node_pair_t *p = node->data.mapping.pairs.start; o && p < node->data.mapping.pairs.top; p++) {
                        yaml_node_t *k = yaml_document_get_node(doc, p->key);
                        json_t *v;
                        if (!k || k->type != YAML_SCALAR_NODE) {
                                snprintf(err, errlen, "line %lu: keys must be plain words",
                                         (unsigned long)(k ? k->start_mark.line + 1 : 0));
                                json_decref(o);
                                return NULL;
                        }
                        char sub[256];
                        if (json_object_get(o, (const char *)k->data.scalar.value)) {
                                /* "jobs.NAME..." names the job as other errors do. */
                                if (strncmp(where, "jobs.", 5) == 0) {
                                        const char *job = where + 5, *rest = job + strcspn(job, ".");
                                        snprintf(err, errlen, "job '%.*s': key '%s%s%.64s' appears twice (line %lu)",
                                                 (int)(rest - job), job, *rest ? rest + 1 : "", *rest ? "." : "",
                                                 (const char *)k->data.scalar.value,
                                                 (unsigned long)k->start_mark.line + 1);
                                } else
                                        snprintf(err, errlen, "line %lu: key '%.64s' appears twice",
                                                 (unsigned long)k->start_mark.line + 1,
                                                 (const char *)k->data.scalar.value);
                                json_decref(o);
                                return NULL;
                        }
                        snprintf(sub, sizeof sub, "%s%s%.64s", where, where[0] ? "." : "",
                                 (const char *)k->data.scalar.value);
                        v = yaml_to_json(doc, yaml_document_get_node(doc, p->value), depth + 1, sub, err, errlen);
                        if (!v) {
                                json_decref(o);
                                return NULL;
                        }
                        json_object_set_new(o, (const char *)k->data.scalar.value, v);
                }
                return o;
        default:
                snprintf(err, errlen, "empty document");
                return NULL;
        }
}

static json_t *load_yaml(const char *path, char *err, size_t errlen) {
        yaml_parser_t parser;
        yaml_document_t doc;
        struct buf b;
        json_t *o = NULL;
        char inner[256] = "";
        int r = read_file(path, 1 << 20, &b);

        if (r < 0) {
                snprintf(err, errlen, "%s: cannot read: %s", path, strerror(-r));
                errno = -r;
                return NULL;
        }
        if (!yaml_parser_initialize(&parser)) {
                buf_done(&b);
                snprintf(err, errlen, "%s: out of memory", path);
                return NULL;
        }
        yaml_parser_set_input_string(&parser, (const unsigned char *)b.data, b.len);
        if (!yaml_parser_load(&parser, &doc)) {
                snprintf(err, errlen, "%s: line %lu: %s", path, (unsigned long)parser.problem_mark.line + 1,
                         parser.problem ? parser.problem : "malformed YAML");
        } else {
                o = yaml_to_json(&doc, yaml_document_get_root_node(&doc), 0, "", inner, sizeof inner);
                if (!o)
                        snprintf(err, errlen, "%s: %s", path, inner);
                yaml_document_delete(&doc);
        }
        yaml_parser_delete(&parser);
        buf_done(&b);
        errno = EINVAL;
        return o;
}

/* ---- validating the definitions --------------------------------------------- */

struct ctx {
        const char *file;
        const char *job;
        char *err;
        size_t errlen;
};

static int fail(struct ctx *c, const char *fmt, ...) _printf_(2, 3);
static int fail(struct ctx *c, const char *fmt, ...) {
        char msg[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        if (c->job)
                snprintf(c->err, c->errlen, "%s: job '%s': %s", c->file, c->job, msg);
        else
                snprintf(c->err, c->errlen, "%s: %s", c->file, msg);
        return -EINVAL;
}

static bool known_keys(struct ctx *c, json_t *o, const char *where, const char *const *keys) {
        const char *k;
        json_t *v;
        json_object_foreach(o, k, v) {
                bool ok = false;
                for (const char *const *p = keys; *p; p++)
                        ok = ok || strcmp(k, *p) == 0;
                if (!ok) {
                        fail(c, "%s: unknown key '%s'", where, k);
                        return false;
                }
        }
        return true;
}

static int get_str(struct ctx *c, json_t *o, const char *key, const char *where, bool required, char **ret) {
        json_t *v = json_object_get(o, key);
        if (!v) {
                if (required)
                        return fail(c, "%s%s is required", where, key);
                *ret = NULL;
                return 0;
        }
        if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
                return fail(c, "%s%s must be text", where, key);
        *ret = strdup(json_string_value(v));
        return *ret ? 0 : -ENOMEM;
}

static int get_u64(struct ctx *c, json_t *o, const char *key, const char *where, uint64_t min, uint64_t max,
                   uint64_t *ret) {
        json_t *v = json_object_get(o, key);
        if (!v)
                return 0; /* keep the default */
        if (!json_is_string(v) || parse_u64(json_string_value(v), min, max, ret) < 0)
                return fail(c, "%s%s must be a whole number between %llu and %llu", where, key,
                            (unsigned long long)min, (unsigned long long)max);
        return 0;
}

static int get_list(struct ctx *c, json_t *o, const char *key, const char *where, bool required, char ***ret,
                    size_t *ret_n) {
        json_t *v = json_object_get(o, key), *x;
        size_t i;
        char **l;

        if (!v) {
                if (required)
                        return fail(c, "%s%s is required", where, key);
                return 0;
        }
        if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > 256)
                return fail(c, "%s%s must be a list of 1 to 256 entries", where, key);
        l = calloc(json_array_size(v) + 1, sizeof *l);
        if (!l)
                return -ENOMEM;
        json_array_foreach(v, i, x) {
                if (!json_is_string(x) || strlen(json_string_value(x)) != json_string_length(x)) {
                        for (size_t j = 0; j < i; j++)
                                free(l[j]);
                        free(l);
                        return fail(c, "%s%s[%zu] must be text", where, key, i);
                }
                l[i] = strdup(json_string_value(x));
        }
        *ret = l;
        *ret_n = json_array_size(v);
        return 0;
}

static void free_list(char **l, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(l[i]);
        free(l);
}

static bool valid_name(const char *s, size_t max) {
        if (!s[0] || strlen(s) > max || !(islower((unsigned char)s[0]) || isdigit((unsigned char)s[0])))
                return false;
        for (const char *p = s; *p; p++)
                if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_' || *p == '-'))
                        return false;
        return true;
}

static bool has_dotdot(const char *path) {
        for (const char *p = path; (p = strstr(p, "..")); p += 2)
                if ((p == path || p[-1] == '/') && (p[2] == 0 || p[2] == '/'))
                        return true;
        return false;
}

static int parse_param(struct ctx *c, const char *name, json_t *o, struct job_param *p) {
        static const char *const keys[] = { "type",   "description", "default", "roots", "extensions", "max_bytes",
                                            "values", "min",         "max",     "pattern", "max_length", "flag", NULL };
        char where[96], *type = NULL;
        int r;

        snprintf(where, sizeof where, "params.%.60s.", name);
        p->name = strdup(name);
        if (!valid_name(name, 64) || strchr(name, '-'))
                return fail(c, "parameter name '%s' must be lower-case letters, digits and '_'", name);
        if (!json_is_object(o))
                return fail(c, "params.%s must be a mapping", name);
        if (!known_keys(c, o, where, keys))
                return -EINVAL;
        if ((r = get_str(c, o, "type", where, true, &type)) < 0)
                return r;
        p->type = _JOB_PARAM_MAX;
        for (int t = 0; t < _JOB_PARAM_MAX; t++)
                if (strcmp(type, job_param_type_to_string((enum job_param_type)t)) == 0)
                        p->type = (enum job_param_type)t;
        free(type);
        if (p->type == _JOB_PARAM_MAX)
                return fail(c, "%stype must be one of input_file, output_file, output_dir, enum, int, number, bool, string",
                            where);
        if ((r = get_str(c, o, "description", where, false, &p->description)) < 0)
                return r;
        p->def = json_incref(json_object_get(o, "default"));
        p->max_bytes = 100ull << 20;
        p->max_length = 256;
        switch (p->type) {
        case JOB_INPUT_FILE:
        case JOB_OUTPUT_FILE:
        case JOB_OUTPUT_DIR:
                if (p->def)
                        return fail(c, "%sdefault: file parameters have no default", where);
                if ((r = get_list(c, o, "roots", where, true, &p->roots, &p->n_roots)) < 0)
                        return r;
                for (size_t i = 0; i < p->n_roots; i++) {
                        size_t l = strlen(p->roots[i]);
                        if (p->roots[i][0] != '/' || has_dotdot(p->roots[i]) || l < 2)
                                return fail(c, "%sroots[%zu] must be an absolute path without '..' (and not /)", where, i);
                        while (l > 1 && p->roots[i][l - 1] == '/')
                                p->roots[i][--l] = 0;
                }
                if (p->type != JOB_OUTPUT_DIR &&
                    (r = get_list(c, o, "extensions", where, p->type == JOB_INPUT_FILE, &p->extensions,
                                  &p->n_extensions)) < 0)
                        return r;
                for (size_t i = 0; i < p->n_extensions; i++) {
                        char *e = p->extensions[i];
                        if (e[0] == '.')
                                memmove(e, e + 1, strlen(e));
                        for (char *q = e; *q; q++)
                                *q = (char)tolower((unsigned char)*q);
                        if (!*e || strchr(e, '/'))
                                return fail(c, "%sextensions[%zu] must be an extension like 'png'", where, i);
                }
                if (p->type == JOB_INPUT_FILE)
                        return get_u64(c, o, "max_bytes", where, 1, 1ull << 40, &p->max_bytes);
                return 0;
        case JOB_ENUM:
                if ((r = get_list(c, o, "values", where, true, &p->values, &p->n_values)) < 0)
                        return r;
                break;
        case JOB_INT:
        case JOB_NUMBER: {
                json_t *mn = json_object_get(o, "min"), *mx = json_object_get(o, "max");
                char *end;
                p->min = -INFINITY;
                p->max = INFINITY;
                if (mn) {
                        p->min = json_is_string(mn) ? strtod(json_string_value(mn), &end) : NAN;
                        if (!json_is_string(mn) || *end || isnan(p->min))
                                return fail(c, "%smin must be a number", where);
                }
                if (mx) {
                        p->max = json_is_string(mx) ? strtod(json_string_value(mx), &end) : NAN;
                        if (!json_is_string(mx) || *end || isnan(p->max))
                                return fail(c, "%smax must be a number", where);
                }
                if (p->min > p->max)
                        return fail(c, "%smin is above max", where);
                break;
        }
        case JOB_BOOL:
                if ((r = get_str(c, o, "flag", where, true, &p->flag)) < 0)
                        return r;
                if (p->flag[0] != '-')
                        return fail(c, "%sflag must be an option like --no-animation", where);
                break;
        case JOB_STRING:
                if ((r = get_str(c, o, "pattern", where, false, &p->pattern)) < 0)
                        return r;
                if ((r = get_u64(c, o, "max_length", where, 1, 65536, &p->max_length)) < 0)
                        return r;
                if (p->pattern) {
                        char *anchored = strdup_printf("^(%s)$", p->pattern);
                        int rc = anchored ? regcomp(&p->re, anchored, REG_EXTENDED | REG_NOSUB) : REG_ESPACE;
                        free(anchored);
                        if (rc != 0)
                                return fail(c, "%spattern is not a valid POSIX extended regular expression", where);
                        p->has_re = true;
                }
                break;
        default:
                break;
        }
        if (p->def && !json_is_string(p->def))
                return fail(c, "%sdefault must be a single value", where);
        return 0;
}

static void param_done(struct job_param *p) {
        free(p->name);
        free(p->description);
        json_decref(p->def);
        free_list(p->roots, p->n_roots);
        free_list(p->extensions, p->n_extensions);
        free_list(p->values, p->n_values);
        free(p->pattern);
        if (p->has_re)
                regfree(&p->re);
        free(p->flag);
}

static void job_done(struct job *j) {
        free(j->name);
        free(j->description);
        free(j->interpreter);
        free(j->script);
        free_list(j->args, j->n_args);
        for (size_t i = 0; i < j->n_params; i++)
                param_done(&j->params[i]);
        free(j->params);
        free_list(j->env, j->n_env);
}

/* The template token for a parameter: "{name}", whole. */
static const char *placeholder(const char *tok, size_t *ret_len) {
        size_t l = strlen(tok);
        if (l < 3 || tok[0] != '{' || tok[l - 1] != '}')
                return NULL;
        *ret_len = l - 2;
        return tok + 1;
}

static int parse_job(struct ctx *c, const char *dir, const char *name, json_t *o, struct job *j) {
        static const char *const keys[] = { "description", "interpreter", "script", "args", "params",
                                            "limits",      "env",         "grace",  NULL };
        static const char *const limit_keys[] = { "timeout", "cpu_time", "memory", "pids", "output", "disk",
                                                  "file_size", "open_files", NULL };
        json_t *params, *limits, *v;
        const char *k;
        char *script = NULL;
        int r;

        c->job = name;
        j->name = strdup(name);
        if (!valid_name(name, 64))
                return fail(c, "job names are lower-case letters, digits, '-' and '_'");
        if (!json_is_object(o))
                return fail(c, "must be a mapping");
        if (!known_keys(c, o, "", keys))
                return -EINVAL;
        if ((r = get_str(c, o, "description", "", false, &j->description)) < 0)
                return r;
        if ((r = get_str(c, o, "interpreter", "", true, &j->interpreter)) < 0)
                return r;
        if (strncmp(j->interpreter, "/usr/", 5) != 0 || has_dotdot(j->interpreter))
                return fail(c, "interpreter must be an absolute path under /usr (the only host tree the sandbox sees), got '%s'",
                            j->interpreter);
        if ((r = get_str(c, o, "script", "", true, &script)) < 0)
                return r;
        j->script = script[0] == '/' ? strdup(script) : strdup_printf("%s/%s", dir, script);
        free(script);
        if (!j->script)
                return -ENOMEM;
        if ((r = get_list(c, o, "args", "", true, &j->args, &j->n_args)) < 0)
                return r;
        if (j->n_args > JOB_MAX_ARGS)
                return fail(c, "args: at most %d", JOB_MAX_ARGS);
        if ((r = get_list(c, o, "env", "", false, &j->env, &j->n_env)) < 0)
                return r;
        for (size_t i = 0; i < j->n_env; i++)
                for (const char *p = j->env[i]; *p; p++)
                        if (!(isupper((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_'))
                                return fail(c, "env[%zu] must be a variable name like BLENDER_USER_CONFIG", i);

        pyexec_limits_default(&j->limits);
        j->limits.timeout_ms = 60000;
        j->limits.cpu_time_ms = 0;
        j->limits.memory_mb = 512;
        j->limits.max_output = 65536;
        j->term_grace_ms = 2000;
        if ((limits = json_object_get(o, "limits"))) {
                if (!json_is_object(limits) || !known_keys(c, limits, "limits.", limit_keys))
                        return -EINVAL;
                if ((r = get_u64(c, limits, "timeout", "limits.", 1, 3600000, &j->limits.timeout_ms)) < 0 ||
                    (r = get_u64(c, limits, "cpu_time", "limits.", 1, 3600000, &j->limits.cpu_time_ms)) < 0 ||
                    (r = get_u64(c, limits, "memory", "limits.", 16, 65536, &j->limits.memory_mb)) < 0 ||
                    (r = get_u64(c, limits, "pids", "limits.", 1, 4096, &j->limits.pids)) < 0 ||
                    (r = get_u64(c, limits, "output", "limits.", 1, 67108864, &j->limits.max_output)) < 0 ||
                    (r = get_u64(c, limits, "disk", "limits.", 1, 65536, &j->limits.disk_mb)) < 0 ||
                    (r = get_u64(c, limits, "file_size", "limits.", 1, 65536, &j->limits.file_size_mb)) < 0 ||
                    (r = get_u64(c, limits, "open_files", "limits.", 16, 65536, &j->limits.open_files)) < 0)
                        return r;
        }
        if (!j->limits.cpu_time_ms)
                j->limits.cpu_time_ms = j->limits.timeout_ms;
        if ((r = get_u64(c, o, "grace", "", 0, 600000, &j->term_grace_ms)) < 0)
                return r;

        params = json_object_get(o, "params");
        if (params && (!json_is_object(params) || json_object_size(params) > JOB_MAX_PARAMS))
                return fail(c, "params must be a mapping of at most %d parameters", JOB_MAX_PARAMS);
        j->params = calloc(json_object_size(params) + 1, sizeof *j->params);
        if (!j->params)
                return -ENOMEM;
        json_object_foreach(params, k, v) {
                r = parse_param(c, k, v, &j->params[j->n_params++]);
                if (r < 0)
                        return r;
        }
        /* Every placeholder names a parameter (or the script); every
         * parameter is used, exactly where a whole argument stands. */
        for (size_t i = 0; i < j->n_args; i++) {
                size_t l;
                const char *ph = placeholder(j->args[i], &l);
                bool found = ph && l == 6 && strncmp(ph, "script", 6) == 0;
                if (!ph) {
                        if (strchr(j->args[i], '{') || strchr(j->args[i], '}'))
                                return fail(c, "args[%zu] '%s': a placeholder must be a whole argument like '{name}'",
                                            i, j->args[i]);
                        continue;
                }
                for (size_t p = 0; p < j->n_params && !found; p++)
                        found = strlen(j->params[p].name) == l && strncmp(j->params[p].name, ph, l) == 0;
                if (!found)
                        return fail(c, "args[%zu] '%s' names no parameter", i, j->args[i]);
        }
        for (size_t p = 0; p < j->n_params; p++) {
                bool used = false;
                for (size_t i = 0; i < j->n_args && !used; i++) {
                        size_t l;
                        const char *ph = placeholder(j->args[i], &l);
                        used = ph && strlen(j->params[p].name) == l && strncmp(j->params[p].name, ph, l) == 0;
                }
                if (!used)
                        return fail(c, "parameter '%s' is not used in args", j->params[p].name);
        }
        c->job = NULL;
        return 0;
}

int jobs_load(const char *path, struct job_set *ret, char *err, size_t errlen) {
        struct job_set s = { 0 };
        struct ctx c = { .file = path, .err = err, .errlen = errlen };
        json_t *doc, *jobs, *v;
        const char *k;
        char *dir, *slash;
        int r = 0;

        doc = load_yaml(path, err, errlen);
        if (!doc)
                return errno == ENOENT ? -ENOENT : -EINVAL;
        dir = strdup(path);
        if (!dir) {
                json_decref(doc);
                return -ENOMEM;
        }
        slash = strrchr(dir, '/');
        if (slash)
                *slash = 0;
        else {
                free(dir);
                dir = strdup(".");
        }
        jobs = json_object_get(doc, "jobs");
        if (!json_is_object(doc) || json_object_size(doc) != 1 || !json_is_object(jobs)) {
                r = fail(&c, "the file must be a mapping with one key, 'jobs', holding a mapping of jobs");
                goto out;
        }
        s.path = strdup(path);
        s.jobs = calloc(json_object_size(jobs) + 1, sizeof *s.jobs);
        if (!s.path || !s.jobs) {
                r = -ENOMEM;
                goto out;
        }
        json_object_foreach(jobs, k, v) {
                r = parse_job(&c, dir, k, v, &s.jobs[s.n_jobs++]);
                if (r < 0)
                        goto out;
        }
        *ret = s;
        s = (struct job_set){ 0 };
out:
        jobs_done(&s);
        free(dir);
        json_decref(doc);
        return r;
}

void jobs_done(struct job_set *s) {
        for (size_t i = 0; i < s->n_jobs; i++)
                job_done(&s->jobs[i]);
        free(s->jobs);
        free(s->path);
        *s = (struct job_set){ 0 };
}

const struct job *jobs_find(const struct job_set *s, const char *name) {
        for (size_t i = 0; s && i < s->n_jobs; i++)
                if (strcmp(s->jobs[i].name, name) == 0)
                        return &s->jobs[i];
        return NULL;
}

char *jobs_default_path(void) {
        const char *env = getenv("PYEXEC_JOBS");
        char exe[PATH_MAX], *slash;
        ssize_t n;

        if (env && *env)
                return strdup(env);
        n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n <= 0)
                return strdup("jobs/jobs.yaml");
        exe[n] = 0;
        slash = strrchr(exe, '/');
        if (slash)
                *slash = 0;
        return strdup_printf("%s/../jobs/jobs.yaml", exe);
}

/* ---- describing ---------------------------------------------------------- */

static json_t *string_list(char **l, size_t n) {
        json_t *a = json_array();
        for (size_t i = 0; i < n; i++)
                json_array_append_new(a, json_string(l[i]));
        return a;
}

json_t *job_readiness(const struct job *j) {
        json_t *problems = json_array();
        struct stat st;

        if (access(j->interpreter, X_OK) < 0)
                json_array_append_new(problems, json_sprintf("interpreter %s is not installed", j->interpreter));
        if (stat(j->script, &st) < 0 || !S_ISREG(st.st_mode))
                json_array_append_new(problems, json_sprintf("script %s is missing", j->script));
        for (size_t p = 0; p < j->n_params; p++)
                for (size_t r = 0; r < j->params[p].n_roots; r++)
                        if (stat(j->params[p].roots[r], &st) < 0 || !S_ISDIR(st.st_mode))
                                json_array_append_new(problems, json_sprintf("parameter %s: root %s does not exist",
                                                                             j->params[p].name, j->params[p].roots[r]));
        return json_pack("{s:b,s:o}", "ready", json_array_size(problems) == 0, "problems", problems);
}

json_t *jobs_describe(const struct job_set *s) {
        json_t *jobs = json_array();
        for (size_t i = 0; s && i < s->n_jobs; i++) {
                const struct job *j = &s->jobs[i];
                json_t *params = json_object();
                for (size_t p = 0; p < j->n_params; p++) {
                        const struct job_param *q = &j->params[p];
                        json_t *d = json_pack("{s:s,s:b}", "type", job_param_type_to_string(q->type), "required",
                                              !q->def && q->type != JOB_BOOL);
                        if (q->description)
                                json_object_set_new(d, "description", json_string(q->description));
                        if (q->def)
                                json_object_set(d, "default", q->def);
                        if (q->n_roots)
                                json_object_set_new(d, "roots", string_list(q->roots, q->n_roots));
                        if (q->n_extensions)
                                json_object_set_new(d, "extensions", string_list(q->extensions, q->n_extensions));
                        if (q->type == JOB_INPUT_FILE)
                                json_object_set_new(d, "maxBytes", json_integer((json_int_t)q->max_bytes));
                        if (q->n_values)
                                json_object_set_new(d, "values", string_list(q->values, q->n_values));
                        if ((q->type == JOB_INT || q->type == JOB_NUMBER) && isfinite(q->min))
                                json_object_set_new(d, "min", json_real(q->min));
                        if ((q->type == JOB_INT || q->type == JOB_NUMBER) && isfinite(q->max))
                                json_object_set_new(d, "max", json_real(q->max));
                        if (q->pattern)
                                json_object_set_new(d, "pattern", json_string(q->pattern));
                        if (q->type == JOB_STRING)
                                json_object_set_new(d, "maxLength", json_integer((json_int_t)q->max_length));
                        if (q->flag)
                                json_object_set_new(d, "flag", json_string(q->flag));
                        json_object_set_new(params, q->name, d);
                }
                json_array_append_new(jobs, json_pack("{s:s,s:s?,s:o,s:o}", "name", j->name, "description",
                                                      j->description, "params", params, "readiness", job_readiness(j)));
        }
        return json_pack("{s:o}", "jobs", jobs);
}

/* ---- running ----------------------------------------------------------------- */

/* Per parameter, what the run needs. */
struct slot {
        char *arg;      /* the argument it becomes; NULL: none (a false bool) */
        int fd;         /* input file, or output staging directory (O_PATH) */
        int parent_fd;  /* output: the directory outputs are published into (O_PATH|O_DIRECTORY) */
        char *dest;     /* sandbox path of the bind */
        char *host;     /* host path as given */
        char *base;     /* output_file: file name */
        char *staging;  /* name of the staging directory in parent_fd */
        char *mkdir_name; /* output_dir: to create in mkdir_parent_fd once all is valid */
        int mkdir_parent_fd;
};

static int perr(struct api_error *err, const struct job_param *p, const char *fmt, ...) _printf_(3, 4);
static int perr(struct api_error *err, const struct job_param *p, const char *fmt, ...) {
        char field[96], msg[400];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        snprintf(field, sizeof field, "params.%s", p->name);
        api_error_set(err, 400, "invalid_parameter", field, "parameter '%s': %s", p->name, msg);
        return -EINVAL;
}

/*
 * Resolve rel beneath dirfd with no symlink in any component and no escape.
 * openat2 does it in one call; kernels before 5.6 get the equivalent walk,
 * one component at a time with O_NOFOLLOW.
 */
static int open_beneath(int dirfd, const char *rel, int flags) {
        struct open_how how = {
                .flags = (uint64_t)(flags | O_CLOEXEC),
                .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
        };
        long fd = syscall(SYS_openat2, dirfd, rel, &how, sizeof how);
        char comp[NAME_MAX + 1];
        int cur;

        if (fd >= 0 || errno != ENOSYS)
                return fd >= 0 ? (int)fd : -errno;
        cur = dup(dirfd);
        for (const char *p = rel; cur >= 0;) {
                size_t l = strcspn(p, "/");
                int next;
                bool last = p[l] == 0;
                if (l == 0 || l > NAME_MAX) {
                        close(cur);
                        return l ? -ENAMETOOLONG : -EINVAL;
                }
                memcpy(comp, p, l);
                comp[l] = 0;
                if (!strcmp(comp, "..") || !strcmp(comp, ".")) {
                        close(cur);
                        return -EXDEV;
                }
                next = openat(cur, comp, (last ? flags : O_PATH | O_DIRECTORY) | O_NOFOLLOW | O_CLOEXEC);
                if (next < 0 && errno == ENOTDIR && !last)
                        errno = ENOTDIR;
                close(cur);
                if (next < 0)
                        return -(errno == ENOTDIR && last ? ELOOP : errno);
                if (last)
                        return next;
                cur = next;
                p += l + 1;
        }
        return -EBADF;
}

static const char *file_kind(mode_t m) {
        if (S_ISDIR(m))
                return "a directory";
        if (S_ISFIFO(m))
                return "a FIFO";
        if (S_ISCHR(m) || S_ISBLK(m))
                return "a device";
        if (S_ISSOCK(m))
                return "a socket";
        if (S_ISLNK(m))
                return "a symlink";
        return "not a regular file";
}

static const char *beneath_error(int r) {
        switch (r) {
        case -ENOENT:
                return "does not exist";
        case -ELOOP:
                return "has a symlink in its path (symlinks are not followed)";
        case -EXDEV:
                return "escapes its allowed root";
        case -ENOTDIR:
                return "has a component that is not a directory";
        case -EACCES:
                return "is not readable";
        default:
                return "cannot be opened";
        }
}

/* Find the root path lies in; ret_rel points into path. */
static const char *root_of(const struct job_param *p, const char *path, const char **ret_rel) {
        for (size_t i = 0; i < p->n_roots; i++) {
                size_t l = strlen(p->roots[i]);
                if (strncmp(path, p->roots[i], l) == 0 && path[l] == '/' && path[l + 1]) {
                        *ret_rel = path + l + 1;
                        return p->roots[i];
                }
        }
        return NULL;
}

static bool extension_ok(const struct job_param *p, const char *base) {
        const char *dot = strrchr(base, '.');
        if (p->n_extensions == 0)
                return true;
        if (!dot || dot == base)
                return false;
        for (size_t i = 0; i < p->n_extensions; i++)
                if (strcasecmp(dot + 1, p->extensions[i]) == 0)
                        return true;
        return false;
}

static char *join_list(char **l, size_t n) {
        struct buf b;
        buf_init(&b, 65536);
        for (size_t i = 0; i < n; i++)
                buf_printf(&b, "%s%s", i ? ", " : "", l[i]);
        return buf_steal(&b);
}

/* Common checks of a path value; ret_rel: the part beneath its root. */
static int check_path(const struct job_param *p, json_t *v, const char **ret_path, const char **ret_rel,
                      const char **ret_root, struct api_error *err) {
        const char *path;
        if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
                return perr(err, p, "must be a path (text)");
        path = json_string_value(v);
        if (path[0] != '/')
                return perr(err, p, "'%s' must be an absolute path", path);
        if (has_dotdot(path))
                return perr(err, p, "'%s': '..' is not allowed in paths", path);
        if (strlen(path) >= PATH_MAX)
                return perr(err, p, "the path is too long");
        *ret_root = root_of(p, path, ret_rel);
        if (!*ret_root) {
                _cleanup_free_ char *roots = join_list(p->roots, p->n_roots);
                return perr(err, p, "'%s' is outside the allowed roots (%s)", path, roots ? roots : "");
        }
        *ret_path = path;
        return 0;
}

static int prepare_input(const struct job_param *p, json_t *v, struct slot *s, struct api_error *err) {
        const char *path, *rel, *root, *base;
        _cleanup_close_ int rootfd = -1;
        struct stat st;
        int fd;

        if (check_path(p, v, &path, &rel, &root, err) < 0)
                return -EINVAL;
        base = strrchr(path, '/') + 1;
        if (!extension_ok(p, base)) {
                _cleanup_free_ char *exts = join_list(p->extensions, p->n_extensions);
                return perr(err, p, "'%s' does not have an allowed extension (%s)", path, exts ? exts : "");
        }
        rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (rootfd < 0)
                return perr(err, p, "its root %s is not available", root);
        fd = open_beneath(rootfd, rel, O_PATH);
        if (fd < 0)
                return perr(err, p, "'%s' %s", path, beneath_error(fd));
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                close(fd);
                return perr(err, p, "'%s' is %s; a regular file is required", path, file_kind(st.st_mode));
        }
        /* A hard link is the file itself under a second name, which may lie
         * outside the allowed roots: anyone who can write into a root could
         * link any file they can name there (protected_hardlinks allows it
         * for files they can read, and root links anything). The root says
         * nothing about where such a file came from, so it is refused. */
        if (st.st_nlink > 1) {
                close(fd);
                return perr(err, p,
                            "'%s' has %ju hard links; an input must have exactly one (another link may name "
                            "a file outside the allowed roots)",
                            path, (uintmax_t)st.st_nlink);
        }
        if ((uint64_t)st.st_size > p->max_bytes) {
                close(fd);
                return perr(err, p, "'%s' is %lld bytes; the limit is %llu", path, (long long)st.st_size,
                            (unsigned long long)p->max_bytes);
        }
        s->fd = fd;
        s->host = strdup(path);
        s->dest = strdup_printf("/job/in/%s/%s", p->name, base);
        s->arg = s->dest ? strdup(s->dest) : NULL;
        return s->dest && s->arg && s->host ? 0 : -ENOMEM;
}

/* A staging directory in parent for the run to write into; outputs are
 * renamed from it into place only when the run ends ok. */
static int make_staging(const struct job_param *p, const char *id, struct slot *s, struct api_error *err) {
        s->staging = strdup_printf(".pyexec-%s-%s", id, p->name);
        if (!s->staging)
                return -ENOMEM;
        if (mkdirat(s->parent_fd, s->staging, 0700) < 0)
                return perr(err, p, "cannot create a staging directory there: %s", strerror(errno));
        s->fd = openat(s->parent_fd, s->staging, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (s->fd < 0)
                return perr(err, p, "cannot open its staging directory: %s", strerror(errno));
        return 0;
}

static int prepare_output(const struct job_param *p, json_t *v, const char *id, struct slot *s,
                          struct api_error *err) {
        const char *path, *rel, *root;
        _cleanup_close_ int rootfd = -1;
        _cleanup_free_ char *parent_rel = NULL;
        struct stat st;
        const char *base;
        int r;

        if (check_path(p, v, &path, &rel, &root, err) < 0)
                return -EINVAL;
        rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (rootfd < 0)
                return perr(err, p, "its root %s is not available", root);
        s->host = strdup(path);
        if (p->type == JOB_OUTPUT_DIR) {
                /* The directory, made if its parent exists. */
                int fd = open_beneath(rootfd, rel, O_PATH | O_DIRECTORY);
                if (fd == -ENOENT) {
                        /* Made later, once every parameter is valid: a
                         * refused request changes nothing on disk. */
                        const char *slash = strrchr(rel, '/');
                        int pfd = slash ? -1 : dup(rootfd);
                        if (slash) {
                                parent_rel = strndup(rel, (size_t)(slash - rel));
                                pfd = parent_rel ? open_beneath(rootfd, parent_rel, O_PATH | O_DIRECTORY) : -ENOMEM;
                        }
                        if (pfd < 0)
                                return perr(err, p, "the parent of '%s' %s", path, beneath_error(pfd));
                        s->mkdir_parent_fd = pfd;
                        s->mkdir_name = strdup(slash ? slash + 1 : rel);
                        s->dest = strdup_printf("/job/out/%s", p->name);
                        s->arg = s->dest ? strdup(s->dest) : NULL;
                        return s->mkdir_name && s->arg ? 0 : -ENOMEM;
                }
                if (fd < 0)
                        return perr(err, p, "'%s' %s", path, fd == -ENOTDIR ? "is not a directory" : beneath_error(fd));
                s->parent_fd = fd;
                s->dest = strdup_printf("/job/out/%s", p->name);
                s->arg = s->dest ? strdup(s->dest) : NULL;
                return s->arg ? 0 : -ENOMEM;
        }
        /* output_file: an allowed name in an existing directory. */
        base = strrchr(path, '/') + 1;
        if (!filename_is_plain(base, strlen(base)) || base[0] == '.')
                return perr(err, p, "'%s' must end in a plain file name", path);
        if (!extension_ok(p, base)) {
                _cleanup_free_ char *exts = join_list(p->extensions, p->n_extensions);
                return perr(err, p, "'%s' does not have an allowed extension (%s)", path, exts ? exts : "");
        }
        if (base - 1 == path + strlen(root))
                s->parent_fd = dup(rootfd);
        else {
                parent_rel = strndup(rel, (size_t)(base - 1 - rel));
                s->parent_fd = parent_rel ? open_beneath(rootfd, parent_rel, O_PATH | O_DIRECTORY) : -ENOMEM;
        }
        if (s->parent_fd < 0)
                return perr(err, p, "the directory of '%s' %s", path, beneath_error(s->parent_fd));
        if (fstatat(s->parent_fd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISREG(st.st_mode))
                return perr(err, p, "'%s' exists and is %s", path, file_kind(st.st_mode));
        s->base = strdup(base);
        s->dest = strdup_printf("/job/out/%s", p->name);
        s->arg = s->dest ? strdup_printf("%s/%s", s->dest, base) : NULL;
        (void)id;
        (void)r;
        return s->arg && s->base ? 0 : -ENOMEM;
}

/* The side effects of an output, once every parameter is valid: the
 * output directory (if it was missing) and the staging directory. */
static int commit_output(const struct job_param *p, const char *id, struct slot *s, struct api_error *err) {
        if (s->mkdir_name) {
                if (mkdirat(s->mkdir_parent_fd, s->mkdir_name, 0755) < 0 && errno != EEXIST)
                        return perr(err, p, "cannot create '%s': %s", s->host, strerror(errno));
                s->parent_fd = openat(s->mkdir_parent_fd, s->mkdir_name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (s->parent_fd < 0)
                        return perr(err, p, "'%s' %s", s->host, beneath_error(-errno));
        }
        return make_staging(p, id, s, err);
}

static int prepare_value(const struct job_param *p, json_t *v, struct slot *s, struct api_error *err) {
        char buf[64], *end;
        const char *text = json_is_string(v) ? json_string_value(v) : NULL;

        switch (p->type) {
        case JOB_ENUM:
                for (size_t i = 0; text && i < p->n_values; i++)
                        if (strcmp(text, p->values[i]) == 0)
                                return (s->arg = strdup(text)) ? 0 : -ENOMEM;
                {
                        _cleanup_free_ char *vals = join_list(p->values, p->n_values);
                        return perr(err, p, "must be one of: %s", vals ? vals : "");
                }
        case JOB_INT: {
                long long x;
                if (json_is_integer(v))
                        x = json_integer_value(v);
                else if (text && *text) {
                        errno = 0;
                        x = strtoll(text, &end, 10);
                        if (*end || errno)
                                return perr(err, p, "must be a whole number, got '%.64s'", text);
                } else
                        return perr(err, p, "must be a whole number");
                if ((double)x < p->min || (double)x > p->max)
                        return perr(err, p, "must be between %g and %g, got %lld", p->min, p->max, x);
                snprintf(buf, sizeof buf, "%lld", x);
                return (s->arg = strdup(buf)) ? 0 : -ENOMEM;
        }
        case JOB_NUMBER: {
                double x;
                if (json_is_number(v))
                        x = json_number_value(v);
                else if (text && *text) {
                        x = strtod(text, &end);
                        if (*end)
                                return perr(err, p, "must be a number, got '%.64s'", text);
                } else
                        return perr(err, p, "must be a number");
                if (!isfinite(x) || x < p->min || x > p->max)
                        return perr(err, p, "must be between %g and %g, got %g", p->min, p->max, x);
                snprintf(buf, sizeof buf, "%.17g", x);
                return (s->arg = strdup(buf)) ? 0 : -ENOMEM;
        }
        case JOB_BOOL: {
                bool on;
                if (json_is_boolean(v))
                        on = json_is_true(v);
                else if (text && (!strcasecmp(text, "true") || !strcmp(text, "1") || !strcasecmp(text, "yes")))
                        on = true;
                else if (text && (!strcasecmp(text, "false") || !strcmp(text, "0") || !strcasecmp(text, "no")))
                        on = false;
                else
                        return perr(err, p, "must be true or false");
                s->arg = on ? strdup(p->flag) : NULL;
                return on && !s->arg ? -ENOMEM : 0;
        }
        case JOB_STRING:
                if (!text || strlen(text) != json_string_length(v))
                        return perr(err, p, "must be text without NUL characters");
                if (json_string_length(v) > p->max_length)
                        return perr(err, p, "must be at most %llu bytes", (unsigned long long)p->max_length);
                if (p->has_re && regexec(&p->re, text, 0, NULL, 0) != 0)
                        return perr(err, p, "'%.64s' does not match the pattern %s", text, p->pattern);
                return (s->arg = strdup(text)) ? 0 : -ENOMEM;
        default:
                return -EINVAL;
        }
}

/*
 * Remove a staging directory and what the run left in it, at any depth,
 * never following a symlink and never leaving the staging directory's file
 * system. No recursion and one directory open at a time: the way back up
 * is "..", checked against the device and inode recorded on the way down
 * (a tree changed meanwhile restarts the walk from the top). A directory
 * that cannot be emptied is remembered and skipped, so the walk ends.
 * The run is over: nothing adds to the tree while it is removed.
 */
struct tree_id {
        dev_t dev;
        ino_t ino;
};

struct tree_ids {
        struct tree_id *v;
        size_t n, cap;
};

static int tree_ids_push(struct tree_ids *t, const struct stat *st) {
        if (t->n == t->cap) {
                size_t cap = t->cap ? t->cap * 2 : 64;
                struct tree_id *v = reallocarray(t->v, cap, sizeof *v);
                if (!v)
                        return -ENOMEM;
                t->v = v;
                t->cap = cap;
        }
        t->v[t->n++] = (struct tree_id){ st->st_dev, st->st_ino };
        return 0;
}

static bool tree_ids_has(const struct tree_ids *t, const struct stat *st) {
        for (size_t i = 0; i < t->n; i++)
                if (t->v[i].dev == st->st_dev && t->v[i].ino == st->st_ino)
                        return true;
        return false;
}

/* Open the subdirectory name of dir to empty it; a directory the run made
 * unreadable or unwritable is made 0700 first (the service owns it, or
 * is root). */
static int open_subdir(int dir, const char *name) {
        int fd = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0 || errno != EACCES)
                return fd;
        if (fchmodat(dir, name, 0700, 0) < 0)
                return -1;
        return openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* Unlink what dir holds except directories; ret_sub: the name of the first
 * subdirectory to descend into (not in skip, on dev), "" if none. */
static int empty_files(int dir, dev_t dev, const struct tree_ids *skip, char ret_sub[static NAME_MAX + 1]) {
        int fd = dup(dir);
        struct dirent *de;
        struct stat st;
        DIR *d;

        ret_sub[0] = 0;
        if (fd < 0)
                return -errno;
        d = fdopendir(fd);
        if (!d) {
                close(fd);
                return -ENOMEM;
        }
        /* The directory was read before through this description. */
        rewinddir(d);
        /* Writable for unlinking when the run made it read-only. */
        (void)fchmod(dir, 0700);
        while ((de = readdir(d))) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                if (unlinkat(dir, de->d_name, 0) == 0 || (errno != EISDIR && errno != EPERM))
                        continue;
                if (fstatat(dir, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
                        continue;
                if (st.st_dev != dev || tree_ids_has(skip, &st))
                        continue;
                if (unlinkat(dir, de->d_name, AT_REMOVEDIR) == 0)
                        continue;
                snprintf(ret_sub, NAME_MAX + 1, "%s", de->d_name);
                break;
        }
        closedir(d);
        return 0;
}

/* Find dir's entry for the inode ino (not "." nor ".."); "" if none. */
static void name_of_inode(int dir, ino_t ino, char ret[static NAME_MAX + 1]) {
        int fd = dup(dir);
        DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
        struct dirent *de;

        ret[0] = 0;
        if (!d) {
                if (fd >= 0)
                        close(fd);
                return;
        }
        rewinddir(d);
        while ((de = readdir(d)))
                if (de->d_ino == ino && strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
                        snprintf(ret, NAME_MAX + 1, "%s", de->d_name);
                        break;
                }
        closedir(d);
}

static void remove_tree_at(int parent, const char *name) {
        struct tree_ids path = { 0 }, skip = { 0 };
        char sub[NAME_MAX + 1];
        struct stat top, st;
        unsigned restarts = 0;
        int cur = -1;

        if (unlinkat(parent, name, 0) == 0 || (errno != EISDIR && errno != EPERM))
                return;
restart:
        if (cur >= 0)
                close(cur);
        path.n = 0;
        /* The tree keeps changing under the walk: nothing a finished run
         * can do, so give up rather than loop. */
        if (restarts++ > 16)
                goto out;
        cur = open_subdir(parent, name);
        if (cur < 0 || fstat(cur, &top) < 0 || tree_ids_push(&path, &top) < 0)
                goto out;
        for (;;) {
                if (empty_files(cur, top.st_dev, &skip, sub) < 0)
                        goto out;
                if (sub[0]) {
                        int next = open_subdir(cur, sub);
                        if (next < 0 || fstat(next, &st) < 0 || tree_ids_push(&path, &st) < 0) {
                                if (next >= 0)
                                        close(next);
                                /* Not to be emptied: skip it from now on. */
                                if (fstatat(cur, sub, &st, AT_SYMLINK_NOFOLLOW) < 0 || tree_ids_push(&skip, &st) < 0)
                                        goto out;
                                continue;
                        }
                        close(cur);
                        cur = next;
                        continue;
                }
                /* cur is as empty as it gets: go up and remove it there. */
                if (path.n == 1)
                        break;
                {
                        struct tree_id me = path.v[path.n - 1], want = path.v[path.n - 2];
                        int up = openat(cur, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

                        if (up < 0 || fstat(up, &st) < 0 || st.st_dev != want.dev || st.st_ino != want.ino) {
                                if (up >= 0)
                                        close(up);
                                goto restart;
                        }
                        close(cur);
                        cur = up;
                        path.n--;
                        name_of_inode(cur, me.ino, sub);
                        if (!sub[0] || unlinkat(cur, sub, AT_REMOVEDIR) < 0) {
                                st = (struct stat){ .st_dev = me.dev, .st_ino = me.ino };
                                if (tree_ids_push(&skip, &st) < 0)
                                        goto out;
                        }
                }
        }
out:
        if (cur >= 0)
                close(cur);
        unlinkat(parent, name, AT_REMOVEDIR);
        free(path.v);
        free(skip.v);
}

static void slot_done(struct slot *s) {
        if (s->staging && s->parent_fd >= 0)
                remove_tree_at(s->parent_fd, s->staging);
        if (s->fd >= 0)
                close(s->fd);
        if (s->parent_fd >= 0)
                close(s->parent_fd);
        if (s->mkdir_parent_fd >= 0)
                close(s->mkdir_parent_fd);
        free(s->mkdir_name);
        free(s->arg);
        free(s->dest);
        free(s->host);
        free(s->base);
        free(s->staging);
}

/* Move one produced file into place; append its description to outputs. */
static int publish_file(struct slot *s, const char *name, const char *dest_path, json_t *outputs, char *why,
                        size_t whylen) {
        _cleanup_close_ int sfd = openat(s->parent_fd, s->staging, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        _cleanup_close_ int fd = -1;
        const char *target = s->base ? s->base : name;
        unsigned char digest[32];
        char hex[65];
        struct stat st, pst;
        uint64_t bytes;

        if (sfd < 0)
                return snprintf(why, whylen, "the staging directory is gone"), -EIO;
        fd = openat(sfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
                return -ENOENT; /* not a regular file: not an output */
        if (sha256_fd(fd, digest, &bytes) < 0)
                return snprintf(why, whylen, "cannot read %s", dest_path), -EIO;
        if (renameat(sfd, name, s->parent_fd, target) < 0)
                return snprintf(why, whylen, "cannot publish %s: %s", dest_path, strerror(errno)), -EIO;
        /* Published files belong to whoever owns the directory, not to the
         * run's throwaway uid. */
        if (fstat(s->parent_fd, &pst) == 0 && geteuid() == 0 && fchown(fd, pst.st_uid, pst.st_gid) < 0)
                return snprintf(why, whylen, "cannot hand %s to its directory's owner", dest_path), -EIO;
        if (fchmod(fd, 0644) < 0)
                return snprintf(why, whylen, "cannot set the mode of %s", dest_path), -EIO;
        sha256_hex(digest, hex);
        json_array_append_new(outputs, json_pack("{s:s,s:I,s:s}", "path", dest_path, "bytes", (json_int_t)bytes,
                                                 "sha256", hex));
        return 0;
}

static int publish(const struct job_param *p, struct slot *s, json_t *outputs, char *why, size_t whylen) {
        if (p->type == JOB_OUTPUT_FILE) {
                int r = publish_file(s, s->base, s->host, outputs, why, whylen);
                if (r == -ENOENT)
                        snprintf(why, whylen, "declared output '%s' (%s) was not produced", p->name, s->host);
                return r;
        }
        {
                int sfd = openat(s->parent_fd, s->staging, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                DIR *d = sfd >= 0 ? fdopendir(sfd) : NULL;
                struct dirent *de;
                size_t before = json_array_size(outputs), n = 0;
                char **names = NULL;
                int r = 0;

                if (!d) {
                        if (sfd >= 0)
                                close(sfd);
                        snprintf(why, whylen, "the staging directory of '%s' is gone", p->name);
                        return -EIO;
                }
                /* Names first, renames after: renaming while reading the
                 * directory could skip or repeat entries. */
                while ((de = readdir(d))) {
                        char **nn;
                        /* Hidden files (and . and ..) are not outputs. */
                        if (de->d_name[0] == '.')
                                continue;
                        if (n >= JOB_MAX_OUTPUT_FILES) {
                                snprintf(why, whylen, "output '%s' received more than %d files", p->name,
                                         JOB_MAX_OUTPUT_FILES);
                                r = -E2BIG;
                                break;
                        }
                        nn = realloc(names, (n + 1) * sizeof *names);
                        if (!nn || !(nn[n] = strdup(de->d_name))) {
                                names = nn ? nn : names;
                                snprintf(why, whylen, "out of memory");
                                r = -ENOMEM;
                                break;
                        }
                        names = nn;
                        n++;
                }
                closedir(d);
                for (size_t i = 0; i < n && r == 0; i++) {
                        _cleanup_free_ char *dest = strdup_printf("%s/%s", s->host, names[i]);
                        int q = publish_file(s, names[i], dest ? dest : s->host, outputs, why, whylen);
                        if (q < 0 && q != -ENOENT)
                                r = q;
                }
                for (size_t i = 0; i < n; i++)
                        free(names[i]);
                free(names);
                if (r < 0)
                        return r;
                if (json_array_size(outputs) == before) {
                        snprintf(why, whylen, "declared output '%s' (%s) received no files", p->name, s->host);
                        return -ENOENT;
                }
                return 0;
        }
}

int job_run(struct pyexec_sandbox *sb, const struct job *j, json_t *params, const char *id, json_t **ret_result,
            struct api_outcome *ret_outcome, struct api_error *err) {
        struct slot slots[JOB_MAX_PARAMS];
        struct pyexec_bind binds[JOB_MAX_PARAMS + 1];
        const char *argv[JOB_MAX_ARGS + 2], *env[64];
        char *env_owned[64];
        size_t n_binds = 0, n_argv = 0, n_env = 0;
        _cleanup_close_ int script_fd = -1;
        _cleanup_free_ char *script_dest = NULL;
        struct pyexec_result res;
        struct pyexec_spec spec;
        json_t *o = NULL, *outputs;
        const char *key, *sbase;
        json_t *v;
        int r = -EINVAL;

        for (size_t i = 0; i < JOB_MAX_PARAMS; i++)
                slots[i] = (struct slot){ .fd = -1, .parent_fd = -1, .mkdir_parent_fd = -1 };
        if (!json_is_object(params)) {
                api_error_set(err, 400, "invalid_request", "params", "params must be an object of parameter values");
                return -EINVAL;
        }
        json_object_foreach(params, key, v) {
                bool known = false;
                for (size_t p = 0; p < j->n_params; p++)
                        known = known || strcmp(j->params[p].name, key) == 0;
                if (!known) {
                        char field[96], *names;
                        struct buf b;
                        buf_init(&b, 4096);
                        for (size_t p = 0; p < j->n_params; p++)
                                buf_printf(&b, "%s%s", p ? ", " : "", j->params[p].name);
                        names = buf_steal(&b);
                        snprintf(field, sizeof field, "params.%.80s", key);
                        api_error_set(err, 400, "invalid_parameter", field,
                                      "unknown parameter '%.80s' for job '%s' (its parameters: %s)", key, j->name,
                                      names ? names : "");
                        free(names);
                        return -EINVAL;
                }
        }
        for (size_t p = 0; p < j->n_params; p++) {
                const struct job_param *q = &j->params[p];
                json_t *val = json_object_get(params, q->name);
                if (!val)
                        val = q->def;
                if (!val && q->type == JOB_BOOL)
                        continue; /* absent flag: false */
                if (!val) {
                        r = perr(err, q, "is required");
                        goto out;
                }
                if (q->type == JOB_INPUT_FILE)
                        r = prepare_input(q, val, &slots[p], err);
                else if (q->type == JOB_OUTPUT_FILE || q->type == JOB_OUTPUT_DIR)
                        r = prepare_output(q, val, id, &slots[p], err);
                else
                        r = prepare_value(q, val, &slots[p], err);
                if (r < 0) {
                        if (r == -ENOMEM)
                                api_error_set(err, 500, "internal_error", NULL, "out of memory");
                        goto out;
                }
        }
        /* Everything is valid: now, and only now, touch the disk. */
        for (size_t p = 0; p < j->n_params; p++) {
                const struct job_param *q = &j->params[p];
                if ((q->type == JOB_OUTPUT_FILE || q->type == JOB_OUTPUT_DIR) && slots[p].dest &&
                    (r = commit_output(q, id, &slots[p], err)) < 0) {
                        if (r == -ENOMEM)
                                api_error_set(err, 500, "internal_error", NULL, "out of memory");
                        goto out;
                }
                if (slots[p].fd >= 0)
                        binds[n_binds++] = (struct pyexec_bind){
                                .fd = slots[p].fd,
                                .dest = slots[p].dest,
                                .dir = q->type == JOB_OUTPUT_FILE || q->type == JOB_OUTPUT_DIR,
                                .writable = q->type == JOB_OUTPUT_FILE || q->type == JOB_OUTPUT_DIR,
                        };
        }

        /* The script, read-only, beside the inputs. */
        script_fd = open(j->script, O_PATH | O_CLOEXEC);
        sbase = strrchr(j->script, '/') ? strrchr(j->script, '/') + 1 : j->script;
        script_dest = strdup_printf("/job/%s", sbase);
        if (script_fd < 0 || !script_dest) {
                api_error_set(err, 503, "job_unavailable", NULL, "job '%s': its script %s is missing", j->name, j->script);
                r = -EINVAL;
                goto out;
        }
        binds[n_binds++] = (struct pyexec_bind){ .fd = script_fd, .dest = script_dest };

        /* The command: each template token is one argument, no shell. */
        argv[n_argv++] = j->interpreter;
        for (size_t i = 0; i < j->n_args; i++) {
                size_t l;
                const char *ph = placeholder(j->args[i], &l);
                if (!ph) {
                        argv[n_argv++] = j->args[i];
                        continue;
                }
                if (l == 6 && !strncmp(ph, "script", 6)) {
                        argv[n_argv++] = script_dest;
                        continue;
                }
                for (size_t p = 0; p < j->n_params; p++)
                        if (strlen(j->params[p].name) == l && !strncmp(j->params[p].name, ph, l) && slots[p].arg)
                                argv[n_argv++] = slots[p].arg;
        }
        for (size_t i = 0; i < j->n_env && n_env < ELEMENTSOF(env); i++) {
                const char *val = getenv(j->env[i]);
                if (val && (env_owned[n_env] = strdup_printf("%s=%s", j->env[i], val)))
                        env[n_env] = env_owned[n_env], n_env++;
        }

        spec = (struct pyexec_spec){
                .limits = j->limits,
                .echo_stdout = -1,
                .echo_stderr = -1,
                .argv = argv,
                .n_argv = n_argv,
                .binds = binds,
                .n_binds = n_binds,
                .env = env,
                .n_env = n_env,
                .term_grace_ms = j->term_grace_ms,
        };
        pyexec_run(sb, &spec, &res);
        o = result_to_json(&res, &spec.limits, id);
        outputs = json_array();
        if (o && res.status == PYEXEC_OK) {
                char why[512] = "";
                for (size_t p = 0; p < j->n_params; p++) {
                        const struct job_param *q = &j->params[p];
                        if ((q->type == JOB_OUTPUT_FILE || q->type == JOB_OUTPUT_DIR) &&
                            publish(q, &slots[p], outputs, why, sizeof why) < 0) {
                                /* The program exited 0 but its contract is
                                 * broken: that is the program's error. */
                                res.status = PYEXEC_RUNTIME_ERROR;
                                json_object_set_new(o, "status", json_string("runtime_error"));
                                json_object_set_new(o, "message", json_string(why));
                                break;
                        }
                }
        }
        if (o) {
                json_object_set_new(o, "job", json_string(j->name));
                json_object_set_new(o, "outputs", outputs);
        } else
                json_decref(outputs);
        *ret_outcome = (struct api_outcome){
                .status = res.status,
                .wall_ms = res.wall_ms,
                .cpu_ms = res.cpu_ms,
                .sandbox_failed = res.status == PYEXEC_INTERNAL_ERROR,
                .http = res.status == PYEXEC_INTERNAL_ERROR ? 500 : 200,
        };
        pyexec_result_done(&res);
        for (size_t i = 0; i < n_env; i++)
                free(env_owned[i]);
        *ret_result = o;
        r = o ? 0 : -ENOMEM;
out:
        for (size_t p = 0; p < j->n_params; p++)
                slot_done(&slots[p]);
        return r;
}
