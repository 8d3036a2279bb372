/* SPDX-License-Identifier: MIT */
#include "jobs-def.h"

#include <ctype.h>
#include <errno.h>
#include <assert.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "jobs-format.h"
#include "util.h"

#define YAML_MAX_DEPTH 16

const char *job_param_type_to_string(enum job_param_type t) {
        static const char *const names[_JOB_PARAM_MAX] = {
                [JOB_INPUT_FILE] = "input_file",
                [JOB_OUTPUT_FILE] = "output_file",
                [JOB_OUTPUT_DIR] = "output_dir",
                [JOB_ENUM] = "enum",
                [JOB_INT] = "int",
                [JOB_NUMBER] = "number",
                [JOB_BOOL] = "bool",
                [JOB_STRING] = "string",
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
        if (!node) {
                snprintf(err, errlen, "empty document");
                return NULL;
        }
        if (depth > YAML_MAX_DEPTH) {
                snprintf(err, errlen, "nested deeper than %d levels", YAML_MAX_DEPTH);
                return NULL;
        }
        switch (node->type) {
        case YAML_SCALAR_NODE:
                return json_stringn((const char *)node->data.scalar.value, node->data.scalar.length);
        case YAML_SEQUENCE_NODE:
                o = json_array();
                for (yaml_node_item_t *i = node->data.sequence.items.start; o && i < node->data.sequence.items.top;
                     i++) {
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
                        /* where: "params.x." or "" (the job's own keys). */
                        if (where[0])
                                fail(c, "%s: unknown key '%s'", where, k);
                        else
                                fail(c, "unknown key '%s'", k);
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
                return fail(c, "%s%s must be a whole number between %llu and %llu", where, key, (unsigned long long)min,
                            (unsigned long long)max);
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

bool job_path_has_dotdot(const char *path) {
        for (const char *p = path; (p = strstr(p, "..")); p += 2)
                if ((p == path || p[-1] == '/') && (p[2] == 0 || p[2] == '/'))
                        return true;
        return false;
}

/* A field a job's result may gain: a word (a letter, then letters and
 * digits) that is not one of the result's own. */
static bool result_field_ok(const char *f) {
        static const char *const taken[] = { "id",     "status", "exitCode",  "signal",  "stdout",
                                             "stderr", "output", "truncated", "message", "time",
                                             "memory", "limits", "job",       "outputs", NULL };
        if (!isalpha((unsigned char)f[0]) || strlen(f) > 64)
                return false;
        for (const char *q = f; *q; q++)
                if (!isalnum((unsigned char)*q))
                        return false;
        for (const char *const *t = taken; *t; t++)
                if (strcmp(f, *t) == 0)
                        return false;
        return true;
}

/* input_file: format (one name or a list) and max_pixels, which only
 * means something for an image format. */
static int parse_formats(struct ctx *c, json_t *o, const char *where, struct job_param *p) {
        json_t *v = json_object_get(o, "format"), *x;
        size_t i;
        int r;

        if (v && json_is_string(v)) {
                int f = job_format_from_string(json_string_value(v));
                if (f < 0)
                        return fail(c, "%sformat must be png, jpeg, webp or blend (or a list of them), got '%.64s'",
                                    where, json_string_value(v));
                p->formats = JOB_FORMAT_BIT(f);
        } else if (v) {
                if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > _JOB_FORMAT_MAX)
                        return fail(c, "%sformat must be png, jpeg, webp or blend, or a list of them", where);
                json_array_foreach(v, i, x) {
                        int f = json_is_string(x) ? job_format_from_string(json_string_value(x)) : -EINVAL;
                        if (f < 0)
                                return fail(c, "%sformat[%zu] must be png, jpeg, webp or blend", where, i);
                        p->formats |= JOB_FORMAT_BIT(f);
                }
        }
        p->max_pixels = JOB_DEFAULT_MAX_PIXELS;
        if (json_object_get(o, "max_pixels") && !(p->formats & JOB_FORMAT_IMAGES))
                return fail(c, "%smax_pixels needs an image format (format: png, jpeg or webp)", where);
        if ((r = get_u64(c, o, "max_pixels", where, 1, JOB_MAX_MAX_PIXELS, &p->max_pixels)) < 0)
                return r;
        return 0;
}

/* output_dir: files: {KEY: {name: TEMPLATE, result: FIELD}}. The
 * templates' placeholders are checked once every parameter is known
 * (check_out_files). */
static int parse_out_files(struct ctx *c, json_t *o, const char *where, struct job_param *p) {
        static const char *const file_keys[] = { "name", "result", NULL };
        json_t *files = json_object_get(o, "files"), *v;
        const char *k;
        char sub[160];
        int r;

        if (!files)
                return 0;
        if (!json_is_object(files) || json_object_size(files) == 0 || json_object_size(files) > JOB_MAX_OUT_FILES)
                return fail(c, "%sfiles must be a mapping of 1 to %d files", where, JOB_MAX_OUT_FILES);
        p->files = calloc(json_object_size(files), sizeof *p->files);
        if (!p->files)
                return -ENOMEM;
        json_object_foreach(files, k, v) {
                struct job_out_file *f = &p->files[p->n_files++];
                snprintf(sub, sizeof sub, "%sfiles.%.32s.", where, k);
                f->key = strdup(k);
                if (!f->key)
                        return -ENOMEM;
                if (!valid_name(k, 64) || strchr(k, '-'))
                        return fail(c, "%sfiles: '%s' must be lower-case letters, digits and '_'", where, k);
                if (!json_is_object(v))
                        return fail(c, "%sfiles.%s must be a mapping (name, result)", where, k);
                if (!known_keys(c, v, sub, file_keys))
                        return -EINVAL;
                if ((r = get_str(c, v, "name", sub, true, &f->name)) < 0)
                        return r;
                if ((r = get_str(c, v, "result", sub, false, &f->result)) < 0)
                        return r;
                if (f->result && !result_field_ok(f->result))
                        return fail(c,
                                    "%sresult must be a field name like renderPath that the result does not have "
                                    "already",
                                    sub);
        }
        return 0;
}

/* input_file, output_file, output_dir: roots, extensions, size. */
static int parse_file_param(struct ctx *c, json_t *o, const char *where, struct job_param *p) {
        int r;

        if (p->def)
                return fail(c, "%sdefault: file parameters have no default", where);
        if ((r = get_list(c, o, "roots", where, true, &p->roots, &p->n_roots)) < 0)
                return r;
        for (size_t i = 0; i < p->n_roots; i++) {
                size_t l = strlen(p->roots[i]);
                if (p->roots[i][0] != '/' || job_path_has_dotdot(p->roots[i]) || l < 2)
                        return fail(c, "%sroots[%zu] must be an absolute path without '..' (and not /)", where, i);
                while (l > 1 && p->roots[i][l - 1] == '/')
                        p->roots[i][--l] = 0;
        }
        if (p->type != JOB_OUTPUT_DIR &&
            (r = get_list(c, o, "extensions", where, p->type == JOB_INPUT_FILE, &p->extensions, &p->n_extensions)) < 0)
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
        if (p->type == JOB_INPUT_FILE && (r = parse_formats(c, o, where, p)) < 0)
                return r;
        if (p->type == JOB_OUTPUT_DIR && (r = parse_out_files(c, o, where, p)) < 0)
                return r;
        if (p->type == JOB_INPUT_FILE)
                return get_u64(c, o, "max_bytes", where, 1, 1ull << 40, &p->max_bytes);
        return 0;
}

/* int, number: min and max, as written (infinite when absent). */
static int parse_bounds(struct ctx *c, json_t *o, const char *where, struct job_param *p) {
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
        return 0;
}

/* string: an optional pattern, compiled anchored, and a length limit. */
static int parse_string_param(struct ctx *c, json_t *o, const char *where, struct job_param *p) {
        int r;

        if ((r = get_str(c, o, "pattern", where, false, &p->pattern)) < 0)
                return r;
        if ((r = get_str(c, o, "default_stem", where, false, &p->default_stem)) < 0)
                return r;
        if (p->default_stem && p->def)
                return fail(c, "%sdefault_stem and default exclude each other", where);
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
        return 0;
}

/* The keys each type takes besides type, description and default: a key
 * of another type (extensions on an output_dir, say) would be ignored, so
 * it is refused. */
static const char *const param_type_keys[_JOB_PARAM_MAX][6] = {
        [JOB_INPUT_FILE] = { "roots", "extensions", "max_bytes", "format", "max_pixels", NULL },
        [JOB_OUTPUT_FILE] = { "roots", "extensions", NULL },
        [JOB_OUTPUT_DIR] = { "roots", "files", NULL },
        [JOB_ENUM] = { "values", NULL },
        [JOB_INT] = { "min", "max", NULL },
        [JOB_NUMBER] = { "min", "max", NULL },
        [JOB_BOOL] = { "flag", NULL },
        [JOB_STRING] = { "pattern", "max_length", "default_stem", NULL },
};

static bool key_applies(enum job_param_type t, const char *key) {
        if (strcmp(key, "type") == 0 || strcmp(key, "description") == 0 || strcmp(key, "default") == 0)
                return true;
        for (const char *const *k = param_type_keys[t]; *k; k++)
                if (strcmp(key, *k) == 0)
                        return true;
        return false;
}

static int parse_param(struct ctx *c, const char *name, json_t *o, struct job_param *p) {
        static const char *const keys[] = { "type",         "description", "default", "roots",      "extensions",
                                            "max_bytes",    "values",      "min",     "max",        "pattern",
                                            "max_length",   "flag",        "format",  "max_pixels", "files",
                                            "default_stem", NULL };
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
                return fail(c,
                            "%stype must be one of input_file, output_file, output_dir, enum, int, number, bool, "
                            "string",
                            where);
        {
                const char *k;
                json_t *v;
                json_object_foreach(o, k,
                                    v) if (!key_applies(p->type,
                                                        k)) return fail(c,
                                                                        "%s%s does not apply to a parameter of type %s",
                                                                        where, k, job_param_type_to_string(p->type));
        }
        if ((r = get_str(c, o, "description", where, false, &p->description)) < 0)
                return r;
        p->def = json_incref(json_object_get(o, "default"));
        p->max_bytes = 100ull << 20;
        p->max_length = 256;
        switch (p->type) {
        case JOB_INPUT_FILE:
        case JOB_OUTPUT_FILE:
        case JOB_OUTPUT_DIR:
                return parse_file_param(c, o, where, p);
        case JOB_ENUM:
                if ((r = get_list(c, o, "values", where, true, &p->values, &p->n_values)) < 0)
                        return r;
                break;
        case JOB_INT:
        case JOB_NUMBER:
                if ((r = parse_bounds(c, o, where, p)) < 0)
                        return r;
                break;
        case JOB_BOOL:
                if ((r = get_str(c, o, "flag", where, true, &p->flag)) < 0)
                        return r;
                if (p->flag[0] != '-')
                        return fail(c, "%sflag must be an option like --no-animation", where);
                break;
        case JOB_STRING:
                if ((r = parse_string_param(c, o, where, p)) < 0)
                        return r;
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
        for (size_t i = 0; i < p->n_files; i++) {
                free(p->files[i].key);
                free(p->files[i].name);
                free(p->files[i].result);
        }
        free(p->files);
        free(p->default_stem);
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
const char *job_placeholder(const char *tok, size_t *ret_len) {
        size_t l = strlen(tok);
        if (l < 3 || tok[0] != '{' || tok[l - 1] != '}')
                return NULL;
        *ret_len = l - 2;
        return tok + 1;
}

/* limits: the service's sandbox limits, with defaults for a job (longer
 * and larger than an /api/execute run's). Each key's range is the limits
 * table's (src/basic/limits.c), which every run is validated against: a value a
 * run would refuse is refused here, when the file is loaded. */
static const struct {
        const char *key, *option; /* jobs.yaml key, limits table option */
} job_limit_keys[] = {
        { "timeout", "timeout" },     { "cpu_time", "cpu-time" },     { "memory", "memory" },
        { "pids", "pids" },           { "output", "max-output" },     { "disk", "disk" },
        { "file_size", "file-size" }, { "open_files", "open-files" },
};

static int parse_limits(struct ctx *c, json_t *o, struct job *j) {
        static const char *const limit_keys[] = { "timeout", "cpu_time",  "memory",     "pids", "output",
                                                  "disk",    "file_size", "open_files", NULL };
        json_t *limits;
        int r;

        pyexec_limits_default(&j->limits);
        j->limits.timeout_ms = 60000;
        j->limits.cpu_time_ms = 0;
        j->limits.memory_mb = 512;
        j->limits.max_output = 65536;
        j->term_grace_ms = 2000;
        if ((limits = json_object_get(o, "limits"))) {
                if (!json_is_object(limits))
                        return fail(c, "limits must be a mapping");
                if (!known_keys(c, limits, "limits.", limit_keys))
                        return -EINVAL;
                for (size_t i = 0; i < ELEMENTSOF(job_limit_keys); i++) {
                        const struct pyexec_limit_info *info = pyexec_limit_find(job_limit_keys[i].option);
                        uint64_t *v;
                        assert(info);
                        v = (uint64_t *)((char *)&j->limits + info->offset);
                        if ((r = get_u64(c, limits, job_limit_keys[i].key, "limits.", info->min, info->max, v)) < 0)
                                return r;
                }
        }
        if (!j->limits.cpu_time_ms)
                j->limits.cpu_time_ms = j->limits.timeout_ms;
        return 0;
}

int job_file_placeholder(const struct job *j, const char *ph, size_t len, size_t *ret_param, size_t *ret_file) {
        const char *dot = memchr(ph, '.', len);
        if (!dot)
                return -ENOENT;
        for (size_t p = 0; p < j->n_params; p++) {
                const struct job_param *q = &j->params[p];
                if (strlen(q->name) != (size_t)(dot - ph) || strncmp(q->name, ph, (size_t)(dot - ph)) != 0)
                        continue;
                for (size_t f = 0; f < q->n_files; f++)
                        if (strlen(q->files[f].key) == len - (size_t)(dot - ph) - 1 &&
                            strncmp(q->files[f].key, dot + 1, len - (size_t)(dot - ph) - 1) == 0) {
                                *ret_param = p;
                                *ret_file = f;
                                return 0;
                        }
        }
        return -ENOENT;
}

/* Whether the file name template t has "{name}". */
static bool template_uses(const char *t, const char *name) {
        size_t l = strlen(name);
        for (const char *q = strchr(t, '{'); q; q = strchr(q + 1, '{'))
                if (strncmp(q + 1, name, l) == 0 && q[1 + l] == '}')
                        return true;
        return false;
}

/* Each output file's template: literal characters of a safe file name, and
 * placeholders naming a parameter whose value is one word (string, enum,
 * int); a string's default_stem names a file parameter declared before it. */
static int check_out_files(struct ctx *c, const struct job *j) {
        for (size_t p = 0; p < j->n_params; p++) {
                const struct job_param *q = &j->params[p];
                for (size_t f = 0; f < q->n_files; f++) {
                        const char *t = q->files[f].name;
                        if (!t[0] || t[0] == '.')
                                return fail(c,
                                            "params.%s.files.%s.name must be a file name template like "
                                            "'{design}_render.png'",
                                            q->name, q->files[f].key);
                        for (const char *x = t; *x; x++) {
                                const char *end;
                                bool ok = false;
                                if (isalnum((unsigned char)*x) || *x == '.' || *x == '_' || *x == '-')
                                        continue;
                                end = *x == '{' ? strchr(x, '}') : NULL;
                                for (size_t r = 0; end && r < j->n_params && !ok; r++)
                                        ok = strlen(j->params[r].name) == (size_t)(end - x - 1) &&
                                             strncmp(j->params[r].name, x + 1, (size_t)(end - x - 1)) == 0 &&
                                             (j->params[r].type == JOB_STRING || j->params[r].type == JOB_ENUM ||
                                              j->params[r].type == JOB_INT);
                                if (!ok)
                                        return fail(c,
                                                    "params.%s.files.%s.name '%s': only letters, digits, '.', '_', "
                                                    "'-' and placeholders of string, enum or int parameters",
                                                    q->name, q->files[f].key, t);
                                x = end;
                        }
                }
                if (q->default_stem) {
                        bool ok = false;
                        for (size_t r = 0; r < p && !ok; r++)
                                ok = strcmp(j->params[r].name, q->default_stem) == 0 &&
                                     (j->params[r].type == JOB_INPUT_FILE || j->params[r].type == JOB_OUTPUT_FILE);
                        if (!ok)
                                return fail(c,
                                            "params.%s.default_stem must name an input_file or output_file parameter "
                                            "declared before it",
                                            q->name);
                }
        }
        return 0;
}

/* Every placeholder names a parameter (or the script); every parameter
 * is used, exactly where a whole argument stands. */
static int check_template(struct ctx *c, const struct job *j) {
        for (size_t i = 0; i < j->n_args; i++) {
                size_t l;
                const char *ph = job_placeholder(j->args[i], &l);
                bool found = ph && l == 6 && strncmp(ph, "script", 6) == 0;
                if (!ph) {
                        if (strchr(j->args[i], '{') || strchr(j->args[i], '}'))
                                return fail(c, "args[%zu] '%s': a placeholder must be a whole argument like '{name}'",
                                            i, j->args[i]);
                        continue;
                }
                for (size_t p = 0; p < j->n_params && !found; p++)
                        found = strlen(j->params[p].name) == l && strncmp(j->params[p].name, ph, l) == 0;
                if (!found && memchr(ph, '.', l)) {
                        size_t pi, fi;
                        found = job_file_placeholder(j, ph, l, &pi, &fi) == 0;
                }
                if (!found)
                        return fail(c, "args[%zu] '%s' names no parameter", i, j->args[i]);
        }
        for (size_t p = 0; p < j->n_params; p++) {
                bool used = false;
                for (size_t i = 0; i < j->n_args && !used; i++) {
                        size_t l;
                        const char *ph = job_placeholder(j->args[i], &l);
                        used = ph && strlen(j->params[p].name) == l && strncmp(j->params[p].name, ph, l) == 0;
                }
                for (size_t q = 0; q < j->n_params && !used; q++)
                        for (size_t f = 0; f < j->params[q].n_files && !used; f++)
                                used = template_uses(j->params[q].files[f].name, j->params[p].name);
                if (!used)
                        return fail(c, "parameter '%s' is not used in args", j->params[p].name);
        }
        return 0;
}

static int parse_job(struct ctx *c, const char *dir, const char *name, json_t *o, struct job *j) {
        static const char *const keys[] = { "description", "interpreter", "script", "args", "params",
                                            "limits",      "env",         "grace",  NULL };
        json_t *params, *v;
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
        if (strncmp(j->interpreter, "/usr/", 5) != 0 || job_path_has_dotdot(j->interpreter))
                return fail(c,
                            "interpreter must be an absolute path under /usr (the only host tree the sandbox sees), "
                            "got '%s'",
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

        if ((r = parse_limits(c, o, j)) < 0)
                return r;
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
        if ((r = check_out_files(c, j)) < 0)
                return r;
        if ((r = check_template(c, j)) < 0)
                return r;
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
        /* A build directory in a checkout: the checkout's jobs. */
        n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n > 0) {
                char *p;
                exe[n] = 0;
                slash = strrchr(exe, '/');
                if (slash)
                        *slash = 0;
                p = strdup_printf("%s/../jobs/jobs.yaml", exe);
                if (!p || access(p, F_OK) == 0)
                        return p;
                free(p);
        }
        /* An installed pyexec: the jobs meson installed. */
        return strdup(PYEXEC_DATADIR "/jobs/jobs.yaml");
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
                                              !q->def && !q->default_stem && q->type != JOB_BOOL);
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
                        if (q->formats) {
                                json_t *fl = json_array();
                                for (int f = 0; f < _JOB_FORMAT_MAX; f++)
                                        if (q->formats & JOB_FORMAT_BIT(f))
                                                json_array_append_new(fl, json_string(job_format_to_string(f)));
                                json_object_set_new(d, "formats", fl);
                        }
                        if (q->formats & JOB_FORMAT_IMAGES)
                                json_object_set_new(d, "maxPixels", json_integer((json_int_t)q->max_pixels));
                        if (q->default_stem)
                                json_object_set_new(d, "defaultStem", json_string(q->default_stem));
                        if (q->n_files) {
                                json_t *fo = json_object();
                                for (size_t f = 0; f < q->n_files; f++)
                                        json_object_set_new(fo, q->files[f].key,
                                                            q->files[f].result
                                                                    ? json_pack("{s:s,s:s}", "name", q->files[f].name,
                                                                                "result", q->files[f].result)
                                                                    : json_pack("{s:s}", "name", q->files[f].name));
                                json_object_set_new(d, "files", fo);
                        }
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
