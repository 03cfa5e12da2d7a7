/* Serialized OTLP traces (ExportTraceServiceRequest) read in C, for the two stages that
 * would otherwise walk every attribute of every span through upb's Python wrappers:
 *
 * - `append_spans`: the spans table's base columns (sinks/clickhouse/columns.py);
 * - `attribute_values`: each span's attributes as plain Python values, for the GenAI
 *   normalizer (processors/genai_normalize/processor.py);
 * - `native_block`: the spans table's insert as one ClickHouse Native block, instead of
 *   clickhouse-connect's serialization value by value (sinks/clickhouse/exporter.py);
 * - `spans_valid`: the receivers' id and time checks over every span, so a valid request
 *   (nearly all) is not walked from Python (ingest/otlp/validate.py);
 * - `scan_texts`: the strings the redaction processor scans, joined per resource, scope and
 *   span, so the detectors' gate can clear each without a walk (processors/redaction/).
 *
 * columns.py's `batch_to_columns` walks upb messages from Python: every attribute read
 * creates wrapper objects, ~20 us a span on bench traffic (BENCHMARKS.md). Serializing
 * the processed request (upb, in C) and reading the wire format here creates only the
 * values the columns hold. The renderings are the Python walk's, exactly: strings and
 * ints here; doubles through PyOS_double_to_string's repr; what is rare or subtle (doubles
 * repr would write with an exponent, non-finite doubles, bytes, arrays and maps as JSON)
 * through the Python functions `configure` hands over, so the two cannot drift.
 * tests/sinks/test_span_columns_native.py checks both walks give the same columns.
 *
 * The input must be upb's own serialization (each singular field at most once): a
 * repeated singular message is not merged here as a protobuf parser would merge it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* Columns in batch_to_columns' order (BASE_COLUMNS). */
enum {
    C_TS, C_TRACE, C_SPAN, C_PARENT, C_STATE, C_NAME, C_KIND, C_SERVICE, C_RES_ATTRS,
    C_SCOPE_NAME, C_SCOPE_VERSION, C_ATTRS, C_DURATION, C_STATUS_CODE, C_STATUS_MSG,
    C_EV_TS, C_EV_NAME, C_EV_ATTRS, C_LN_TRACE, C_LN_SPAN, C_LN_STATE, C_LN_ATTRS, N_COLUMNS
};

static PyObject *json_encode;    /* list/dict -> compact JSON text */
static PyObject *format_double;  /* float -> the Collector's text */
static PyObject *finite_or_text; /* float -> the float, or its text when not finite */
static PyObject *base64_text;    /* bytes -> base64 text */
static PyObject *empty_tuple, *empty_str, *true_str, *false_str, *service_key;
static PyObject *kind_names[6], *status_names[3];

typedef struct {
    const uint8_t *p, *end;
} Buf;

static int malformed(const char *what) {
    PyErr_Format(PyExc_ValueError, "malformed OTLP protobuf: %s", what);
    return -1;
}

static int read_varint(Buf *b, uint64_t *out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (b->p >= b->end) return malformed("truncated varint");
        uint8_t byte = *b->p++;
        v |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return malformed("varint too long");
}

static int read_fixed64(Buf *b, uint64_t *out) {
    if (b->end - b->p < 8) return malformed("truncated fixed64");
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | b->p[i];
    b->p += 8;
    *out = v;
    return 0;
}

static int read_bytes(Buf *b, Buf *out) {
    uint64_t n;
    if (read_varint(b, &n) < 0) return -1;
    if (n > (uint64_t)(b->end - b->p)) return malformed("truncated length-delimited field");
    out->p = b->p;
    out->end = b->p + n;
    b->p += n;
    return 0;
}

/* One field's tag; 0 at the end of the buffer. */
static int read_tag(Buf *b, uint32_t *field, int *wire_type) {
    uint64_t tag;
    if (read_varint(b, &tag) < 0) return -1;
    *field = (uint32_t)(tag >> 3);
    *wire_type = (int)(tag & 7);
    return 0;
}

static int skip_field(Buf *b, int wire_type) {
    uint64_t ignored;
    Buf sub;
    switch (wire_type) {
    case 0: return read_varint(b, &ignored);
    case 1: return read_fixed64(b, &ignored);
    case 2: return read_bytes(b, &sub);
    case 5:
        if (b->end - b->p < 4) return malformed("truncated fixed32");
        b->p += 4;
        return 0;
    default: return malformed("unsupported wire type");
    }
}

/* Length-delimited payloads are only read where the wire type says so: a field of the
 * expected number with another type is skipped as a protobuf parser would keep it unknown. */
#define EXPECT(wt, want) ((wt) == (want))

/* Calls `fn(ctx, payload)` for every length-delimited field numbered `wanted` of message `b`,
 * in wire order; other fields are skipped. */
typedef int (*Visit)(void *ctx, Buf b);

static int each(void *ctx, Buf b, uint32_t wanted, Visit fn) {
    while (b.p < b.end) {
        uint32_t field;
        int wt;
        Buf sub;
        if (read_tag(&b, &field, &wt) < 0) return -1;
        if (field == wanted && EXPECT(wt, 2)) {
            if (read_bytes(&b, &sub) < 0 || fn(ctx, sub) < 0) return -1;
        } else if (skip_field(&b, wt) < 0) return -1;
    }
    return 0;
}

/* `each`, stopping at the first field `fn` answers positively (that answer is returned). */
static int each_until(void *ctx, Buf b, uint32_t wanted, Visit fn) {
    while (b.p < b.end) {
        uint32_t field;
        int wt, rc;
        Buf sub;
        if (read_tag(&b, &field, &wt) < 0) return -1;
        if (field == wanted && EXPECT(wt, 2)) {
            if (read_bytes(&b, &sub) < 0 || (rc = fn(ctx, sub)) < 0) return -1;
            if (rc > 0) return rc;
        } else if (skip_field(&b, wt) < 0) return -1;
    }
    return 0;
}

/* The scalar and bytes fields a caller wants from message `b` (the last occurrence wins, as
 * in protobuf); `map`, when given, gets the KeyValue fields numbered `attributes`. */
typedef struct {
    uint32_t field;
    int wire_type; /* 0 varint, 1 fixed64: into `number`; 2: into `bytes` */
    uint64_t *number;
    Buf *bytes;
} Want;

static int put_attribute(PyObject *map, Buf b);

static int read_fields(Buf b, const Want *wants, int n, uint32_t attributes, PyObject *map) {
    while (b.p < b.end) {
        uint32_t field;
        int wt, rc = 1;
        if (read_tag(&b, &field, &wt) < 0) return -1;
        for (int i = 0; i < n && rc == 1; i++) {
            if (wants[i].field != field || wants[i].wire_type != wt) continue;
            rc = wt == 0 ? read_varint(&b, wants[i].number)
               : wt == 1 ? read_fixed64(&b, wants[i].number)
               : read_bytes(&b, wants[i].bytes);
        }
        if (rc == 1 && map && field == attributes && wt == 2) {
            Buf kv;
            rc = (read_bytes(&b, &kv) < 0 || put_attribute(map, kv) < 0) ? -1 : 0;
        }
        if (rc == 1) rc = skip_field(&b, wt);
        if (rc < 0) return -1;
    }
    return 0;
}

static PyObject *text(Buf s) {
    if (s.p == s.end) {
        Py_INCREF(empty_str);
        return empty_str;
    }
    return PyUnicode_DecodeUTF8((const char *)s.p, s.end - s.p, NULL);
}

/* Short strings repeat from span to span (attribute keys, models, systems, span names, token
 * counts): one str each, kept in a small direct-mapped cache, saves the decode, the
 * allocation and, as a dict key, the hashing, which Python caches in the str. ASCII only:
 * its UTF-8 bytes are the str's own data, compared in place. */
#define CACHE_SLOTS 4096
#define CACHE_MAX_LEN 64

static PyObject *cache[CACHE_SLOTS];

static PyObject *cached_text(const uint8_t *p, Py_ssize_t n) {
    if (n == 0) {
        Py_INCREF(empty_str);
        return empty_str;
    }
    if (n > CACHE_MAX_LEN) return PyUnicode_DecodeUTF8((const char *)p, n, NULL);
    /* Hashed on the length and the first and last eight bytes: keys of one family
     * (gen_ai.usage.input_tokens, ...output_tokens) differ at their ends. */
    uint64_t head = 0, tail = 0;
    memcpy(&head, p, n < 8 ? n : 8);
    memcpy(&tail, p + (n > 8 ? n - 8 : 0), n < 8 ? n : 8);
    uint64_t mixed = (head * 0x9E3779B97F4A7C15ull) ^ (tail + (uint64_t)n) * 0xC2B2AE3D27D4EB4Full;
    uint32_t h = (uint32_t)(mixed >> 32) ^ (uint32_t)mixed;
    PyObject **slot = &cache[h & (CACHE_SLOTS - 1)];
    PyObject *hit = *slot;
    if (hit && PyUnicode_GET_LENGTH(hit) == n && memcmp(PyUnicode_1BYTE_DATA(hit), p, n) == 0) {
        Py_INCREF(hit);
        return hit;
    }
    PyObject *out = PyUnicode_DecodeUTF8((const char *)p, n, NULL);
    if (out && PyUnicode_IS_ASCII(out)) {
        Py_INCREF(out);
        Py_XSETREF(*slot, out);
    }
    return out;
}

static PyObject *short_text(Buf s) {
    return cached_text(s.p, s.end - s.p);
}

static PyObject *hex(Buf s) {
    static const char digits[] = "0123456789abcdef";
    Py_ssize_t n = s.end - s.p;
    if (n == 0) {
        Py_INCREF(empty_str);
        return empty_str;
    }
    PyObject *out = PyUnicode_New(2 * n, 127);
    if (!out) return NULL;
    Py_UCS1 *dst = PyUnicode_1BYTE_DATA(out);
    for (Py_ssize_t i = 0; i < n; i++) {
        dst[2 * i] = digits[s.p[i] >> 4];
        dst[2 * i + 1] = digits[s.p[i] & 15];
    }
    return out;
}

/* AnyValue's oneof, as read from the wire: the last field present wins. */
enum { V_NONE, V_STRING, V_BOOL, V_INT, V_DOUBLE, V_ARRAY, V_KVLIST, V_BYTES };

typedef struct {
    int kind;
    uint64_t scalar; /* bool, int (two's complement), double (bits) */
    Buf bytes;       /* string, bytes, array, kvlist payloads */
} AnyValue;

static int read_any(Buf b, AnyValue *v) {
    v->kind = V_NONE;
    while (b.p < b.end) {
        uint32_t field;
        int wt;
        if (read_tag(&b, &field, &wt) < 0) return -1;
        if (field == 1 && EXPECT(wt, 2)) { v->kind = V_STRING; if (read_bytes(&b, &v->bytes) < 0) return -1; }
        else if (field == 2 && EXPECT(wt, 0)) { v->kind = V_BOOL; if (read_varint(&b, &v->scalar) < 0) return -1; }
        else if (field == 3 && EXPECT(wt, 0)) { v->kind = V_INT; if (read_varint(&b, &v->scalar) < 0) return -1; }
        else if (field == 4 && EXPECT(wt, 1)) { v->kind = V_DOUBLE; if (read_fixed64(&b, &v->scalar) < 0) return -1; }
        else if (field == 5 && EXPECT(wt, 2)) { v->kind = V_ARRAY; if (read_bytes(&b, &v->bytes) < 0) return -1; }
        else if (field == 6 && EXPECT(wt, 2)) { v->kind = V_KVLIST; if (read_bytes(&b, &v->bytes) < 0) return -1; }
        else if (field == 7 && EXPECT(wt, 2)) { v->kind = V_BYTES; if (read_bytes(&b, &v->bytes) < 0) return -1; }
        else if (skip_field(&b, wt) < 0) return -1;
    }
    return 0;
}

static double as_double(uint64_t bits) {
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

static PyObject *call1(PyObject *fn, PyObject *arg) {
    if (!arg) return NULL;
    PyObject *out = PyObject_CallOneArg(fn, arg);
    Py_DECREF(arg);
    return out;
}

static PyObject *bytes_object(Buf s) {
    return PyBytes_FromStringAndSize((const char *)s.p, s.end - s.p);
}

/* KeyValue: key and the value's payload. */
static int read_key_value(Buf b, Buf *key, Buf *value, int *has_value) {
    Buf none = {b.p, b.p};
    *key = none;
    *value = none;
    value->p = NULL;
    const Want wants[] = {{1, 2, NULL, key}, {2, 2, NULL, value}};
    if (read_fields(b, wants, 2, 0, NULL) < 0) return -1;
    *has_value = value->p != NULL;
    return 0;
}

/* How plain values render what Python has more than one answer for (anyvalue.AnyValueStyle):
 * PLAIN keeps bytes and doubles; COLLECTOR gives bytes as base64 and non-finite doubles as
 * text, as the spans table stores them. */
typedef enum { PLAIN, COLLECTOR } Style;

typedef struct {
    PyObject *out; /* the list or dict being filled */
    Style style;
} Into;

static PyObject *any_to_python(Buf b, Style style);
static int append(PyObject *list, PyObject *item);

static int append_python(void *into, Buf item) {
    Into *i = into;
    return append(i->out, any_to_python(item, i->style));
}

static int put_python(void *into, Buf kv) {
    Into *i = into;
    Buf key, value = {NULL, NULL};
    int has_value;
    if (read_key_value(kv, &key, &value, &has_value) < 0) return -1;
    PyObject *k = short_text(key);
    if (!k) return -1;
    PyObject *v = has_value ? any_to_python(value, i->style) : Py_NewRef(Py_None);
    int rc = v ? PyDict_SetItem(i->out, k, v) : -1;
    Py_DECREF(k);
    Py_XDECREF(v);
    return rc;
}

/* ArrayValue / KeyValueList payload -> list / dict of plain values (anyvalue.to_python).
 * A kvlist's repeated key keeps its last value. */
static PyObject *array_to_python(Buf b, Style style) {
    Into into = {PyList_New(0), style};
    if (into.out && each(&into, b, 1, append_python) < 0) Py_CLEAR(into.out);
    return into.out;
}

static PyObject *kvlist_to_python(Buf b, Style style) {
    Into into = {PyDict_New(), style};
    if (into.out && each(&into, b, 1, put_python) < 0) Py_CLEAR(into.out);
    return into.out;
}

static PyObject *any_to_python(Buf b, Style style) {
    AnyValue v;
    if (read_any(b, &v) < 0) return NULL;
    switch (v.kind) {
    case V_STRING: return short_text(v.bytes);
    case V_BOOL: return PyBool_FromLong(v.scalar != 0);
    case V_INT: return PyLong_FromLongLong((long long)v.scalar);
    case V_DOUBLE:
        if (style == PLAIN) return PyFloat_FromDouble(as_double(v.scalar));
        return call1(finite_or_text, PyFloat_FromDouble(as_double(v.scalar)));
    case V_ARRAY: return array_to_python(v.bytes, style);
    case V_KVLIST: return kvlist_to_python(v.bytes, style);
    case V_BYTES:
        if (style == PLAIN) return bytes_object(v.bytes);
        return call1(base64_text, bytes_object(v.bytes));
    default: Py_RETURN_NONE;
    }
}

/* AnyValue payload -> its text (columns.any_to_str). */
static PyObject *any_to_str(Buf b) {
    AnyValue v;
    if (read_any(b, &v) < 0) return NULL;
    switch (v.kind) {
    case V_STRING: return short_text(v.bytes);
    case V_INT: {
        char buf[24];
        int n = snprintf(buf, sizeof buf, "%lld", (long long)v.scalar);
        return cached_text((const uint8_t *)buf, n);
    }
    case V_BOOL: {
        PyObject *out = v.scalar ? true_str : false_str;
        Py_INCREF(out);
        return out;
    }
    case V_DOUBLE: {
        double d = as_double(v.scalar);
        if (isfinite(d)) {
            /* repr without the ".0" of a whole number: the Collector's text unless repr
             * would use an exponent, which format_double expands. */
            char *repr = PyOS_double_to_string(d, 'r', 0, 0, NULL);
            if (!repr) return NULL;
            if (!strchr(repr, 'e')) {
                PyObject *out = PyUnicode_FromString(repr);
                PyMem_Free(repr);
                return out;
            }
            PyMem_Free(repr);
        }
        return call1(format_double, PyFloat_FromDouble(d));
    }
    case V_ARRAY: return call1(json_encode, array_to_python(v.bytes, COLLECTOR));
    case V_KVLIST: return call1(json_encode, kvlist_to_python(v.bytes, COLLECTOR));
    case V_BYTES: return call1(base64_text, bytes_object(v.bytes));
    default:
        Py_INCREF(empty_str);
        return empty_str;
    }
}

/* A KeyValue into `map` (a repeated key keeps its last value, in its first place). */
static int put_attribute(PyObject *map, Buf b) {
    Buf key, value = {NULL, NULL};
    int has_value;
    if (read_key_value(b, &key, &value, &has_value) < 0) return -1;
    PyObject *k = short_text(key);
    if (!k) return -1;
    PyObject *v;
    if (has_value) v = any_to_str(value);
    else { v = empty_str; Py_INCREF(v); }
    int rc = v ? PyDict_SetItem(map, k, v) : -1;
    Py_DECREF(k);
    Py_XDECREF(v);
    return rc;
}

/* Appends `item` to `list`, stealing the reference. */
static int append(PyObject *list, PyObject *item) {
    if (!item) return -1;
    int rc = PyList_Append(list, item);
    Py_DECREF(item);
    return rc;
}

/* Event (time 1, name 2, attributes 3) or Link (trace_id 1, span_id 2, trace_state 3,
 * attributes 4) into the span's lists. */
static int read_event(Buf b, PyObject *times, PyObject *names, PyObject *attrs) {
    uint64_t time = 0;
    Buf name = {b.p, b.p};
    const Want wants[] = {{1, 1, &time, NULL}, {2, 2, NULL, &name}};
    PyObject *map = PyDict_New();
    if (!map || read_fields(b, wants, 2, 3, map) < 0
        || append(times, PyLong_FromUnsignedLongLong(time)) < 0 || append(names, short_text(name)) < 0) {
        Py_XDECREF(map);
        return -1;
    }
    return append(attrs, map);
}

static int read_link(Buf b, PyObject *traces, PyObject *spans, PyObject *states, PyObject *attrs) {
    Buf trace = {b.p, b.p}, span = {b.p, b.p}, state = {b.p, b.p};
    const Want wants[] = {{1, 2, NULL, &trace}, {2, 2, NULL, &span}, {3, 2, NULL, &state}};
    PyObject *map = PyDict_New();
    if (!map || read_fields(b, wants, 3, 4, map) < 0
        || append(traces, hex(trace)) < 0 || append(spans, hex(span)) < 0 || append(states, text(state)) < 0) {
        Py_XDECREF(map);
        return -1;
    }
    return append(attrs, map);
}

typedef struct {
    PyObject **cols;         /* N_COLUMNS lists */
    PyObject *resource;      /* the resource's attribute map, shared by its spans */
    PyObject *service;
    PyObject *scope_name, *scope_version;
} Context;

static PyObject *enum_name(uint64_t value, PyObject **names, int n) {
    int64_t v = (int64_t)value; /* enums are int32 on the wire, negative ones sign-extended */
    PyObject *out = (v >= 0 && v < n) ? names[v] : names[0];
    Py_INCREF(out);
    return out;
}

/* Status: message 2, code 3. */
static int read_status(Buf b, Buf *message, uint64_t *code) {
    const Want wants[] = {{2, 2, NULL, message}, {3, 0, code, NULL}};
    return read_fields(b, wants, 2, 0, NULL);
}

#define NEW_LIST(var) do { if (!(var) && !((var) = PyList_New(0))) goto fail; } while (0)

static int read_span(Context *ctx, Buf b) {
    Buf none = {b.p, b.p};
    Buf trace = none, span = none, parent = none, state = none, name = none, status_msg = none;
    uint64_t kind = 0, start = 0, end = 0, status_code = 0;
    PyObject *attrs = PyDict_New();
    PyObject *ev_ts = NULL, *ev_names = NULL, *ev_attrs = NULL;
    PyObject *ln_trace = NULL, *ln_span = NULL, *ln_state = NULL, *ln_attrs = NULL;
    PyObject **cols = ctx->cols;
    if (!attrs) return -1;
    while (b.p < b.end) {
        uint32_t field;
        int wt;
        Buf sub;
        if (read_tag(&b, &field, &wt) < 0) goto fail;
        switch (field) {
        case 1: if (EXPECT(wt, 2)) { if (read_bytes(&b, &trace) < 0) goto fail; continue; } break;
        case 2: if (EXPECT(wt, 2)) { if (read_bytes(&b, &span) < 0) goto fail; continue; } break;
        case 3: if (EXPECT(wt, 2)) { if (read_bytes(&b, &state) < 0) goto fail; continue; } break;
        case 4: if (EXPECT(wt, 2)) { if (read_bytes(&b, &parent) < 0) goto fail; continue; } break;
        case 5: if (EXPECT(wt, 2)) { if (read_bytes(&b, &name) < 0) goto fail; continue; } break;
        case 6: if (EXPECT(wt, 0)) { if (read_varint(&b, &kind) < 0) goto fail; continue; } break;
        case 7: if (EXPECT(wt, 1)) { if (read_fixed64(&b, &start) < 0) goto fail; continue; } break;
        case 8: if (EXPECT(wt, 1)) { if (read_fixed64(&b, &end) < 0) goto fail; continue; } break;
        case 9:
            if (EXPECT(wt, 2)) {
                if (read_bytes(&b, &sub) < 0 || put_attribute(attrs, sub) < 0) goto fail;
                continue;
            }
            break;
        case 11:
            if (EXPECT(wt, 2)) {
                NEW_LIST(ev_ts); NEW_LIST(ev_names); NEW_LIST(ev_attrs);
                if (read_bytes(&b, &sub) < 0 || read_event(sub, ev_ts, ev_names, ev_attrs) < 0) goto fail;
                continue;
            }
            break;
        case 13:
            if (EXPECT(wt, 2)) {
                NEW_LIST(ln_trace); NEW_LIST(ln_span); NEW_LIST(ln_state); NEW_LIST(ln_attrs);
                if (read_bytes(&b, &sub) < 0 || read_link(sub, ln_trace, ln_span, ln_state, ln_attrs) < 0) goto fail;
                continue;
            }
            break;
        case 15:
            if (EXPECT(wt, 2)) {
                if (read_bytes(&b, &sub) < 0 || read_status(sub, &status_msg, &status_code) < 0) goto fail;
                continue;
            }
            break;
        }
        if (skip_field(&b, wt) < 0) goto fail;
    }
    /* A span without events or links shares the empty tuple: no container to allocate,
     * track for the garbage collector and free, seven times a span. */
    if (!ev_ts) {
        ev_ts = ev_names = ev_attrs = empty_tuple;
        Py_INCREF(empty_tuple); Py_INCREF(empty_tuple); Py_INCREF(empty_tuple);
    }
    if (!ln_trace) {
        ln_trace = ln_span = ln_state = ln_attrs = empty_tuple;
        Py_INCREF(empty_tuple); Py_INCREF(empty_tuple); Py_INCREF(empty_tuple); Py_INCREF(empty_tuple);
    }

    /* The span's row: every column gets its value, or none do (the caller drops the call's
     * partial rows on an error). */
    if (append(cols[C_TS], PyLong_FromUnsignedLongLong(start)) < 0
        || append(cols[C_TRACE], hex(trace)) < 0
        || append(cols[C_SPAN], hex(span)) < 0
        || append(cols[C_PARENT], hex(parent)) < 0
        || append(cols[C_STATE], text(state)) < 0
        || append(cols[C_NAME], short_text(name)) < 0
        || append(cols[C_KIND], enum_name(kind, kind_names, 6)) < 0
        || PyList_Append(cols[C_SERVICE], ctx->service) < 0
        || PyList_Append(cols[C_RES_ATTRS], ctx->resource) < 0
        || PyList_Append(cols[C_SCOPE_NAME], ctx->scope_name) < 0
        || PyList_Append(cols[C_SCOPE_VERSION], ctx->scope_version) < 0
        || PyList_Append(cols[C_ATTRS], attrs) < 0
        || append(cols[C_DURATION], PyLong_FromUnsignedLongLong(end > start ? end - start : 0)) < 0
        || append(cols[C_STATUS_CODE], enum_name(status_code, status_names, 3)) < 0
        || append(cols[C_STATUS_MSG], short_text(status_msg)) < 0
        || PyList_Append(cols[C_EV_TS], ev_ts) < 0
        || PyList_Append(cols[C_EV_NAME], ev_names) < 0
        || PyList_Append(cols[C_EV_ATTRS], ev_attrs) < 0
        || PyList_Append(cols[C_LN_TRACE], ln_trace) < 0
        || PyList_Append(cols[C_LN_SPAN], ln_span) < 0
        || PyList_Append(cols[C_LN_STATE], ln_state) < 0
        || PyList_Append(cols[C_LN_ATTRS], ln_attrs) < 0)
        goto fail;
    Py_DECREF(attrs);
    Py_DECREF(ev_ts); Py_DECREF(ev_names); Py_DECREF(ev_attrs);
    Py_DECREF(ln_trace); Py_DECREF(ln_span); Py_DECREF(ln_state); Py_DECREF(ln_attrs);
    return 0;
fail:
    Py_DECREF(attrs);
    Py_XDECREF(ev_ts); Py_XDECREF(ev_names); Py_XDECREF(ev_attrs);
    Py_XDECREF(ln_trace); Py_XDECREF(ln_span); Py_XDECREF(ln_state); Py_XDECREF(ln_attrs);
    return -1;
}

static int span_row(void *ctx, Buf b) { return read_span((Context *)ctx, b); }

/* ScopeSpans: scope 1 (name 1, version 2), spans 2. The scope is read first wherever it sits. */
typedef struct {
    Buf name, version;
} Scope;

static int read_scope(void *scope, Buf b) {
    Scope *sc = scope;
    const Want wants[] = {{1, 2, NULL, &sc->name}, {2, 2, NULL, &sc->version}};
    return read_fields(b, wants, 2, 0, NULL);
}

static int read_scope_spans(Context *ctx, Buf b) {
    Scope scope = {{b.p, b.p}, {b.p, b.p}};
    if (each(&scope, b, 1, read_scope) < 0) return -1;
    Buf name = scope.name, version = scope.version;
    ctx->scope_name = text(name);
    ctx->scope_version = ctx->scope_name ? text(version) : NULL;
    int rc = ctx->scope_version ? each(ctx, b, 2, span_row) : -1;
    Py_CLEAR(ctx->scope_name);
    Py_CLEAR(ctx->scope_version);
    return rc;
}

static int attribute_into(void *map, Buf kv) { return put_attribute((PyObject *)map, kv); }
static int attributes_into(void *map, Buf resource) { return each(map, resource, 1, attribute_into); }
static int scope_rows(void *ctx, Buf b) { return read_scope_spans((Context *)ctx, b); }

/* ResourceSpans: resource 1 (attributes 1), scope_spans 2. The resource is read first
 * wherever it sits. */
static int read_resource_spans(Context *ctx, Buf b, PyObject *drop_key) {
    PyObject *resource = PyDict_New();
    if (!resource) return -1;
    int rc = each(resource, b, 1, attributes_into);
    if (rc == 0) {
        int present = PyDict_Contains(resource, drop_key);
        if (present < 0 || (present && PyDict_DelItem(resource, drop_key) < 0)) rc = -1;
    }
    if (rc < 0) {
        Py_DECREF(resource);
        return -1;
    }
    PyObject *service = PyDict_GetItemWithError(resource, service_key);
    if (!service) {
        if (PyErr_Occurred()) { Py_DECREF(resource); return -1; }
        service = empty_str;
    }
    Py_INCREF(service);
    ctx->resource = resource;
    ctx->service = service;
    rc = each(ctx, b, 2, scope_rows);
    Py_CLEAR(ctx->resource);
    Py_CLEAR(ctx->service);
    return rc;
}

static PyObject *append_spans(PyObject *self, PyObject *args) {
    Py_buffer body;
    PyObject *columns, *drop_key;
    if (!json_encode) {
        PyErr_SetString(PyExc_RuntimeError, "_otlpwire.configure() was not called");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "y*O!U:append_spans", &body, &PyList_Type, &columns, &drop_key)) return NULL;
    PyObject *cols[N_COLUMNS];
    Py_ssize_t before = 0;
    if (PyList_GET_SIZE(columns) != N_COLUMNS) {
        PyErr_Format(PyExc_ValueError, "append_spans needs %d column lists", N_COLUMNS);
        goto fail;
    }
    for (int i = 0; i < N_COLUMNS; i++) {
        cols[i] = PyList_GET_ITEM(columns, i);
        if (!PyList_Check(cols[i])) {
            PyErr_SetString(PyExc_TypeError, "append_spans: columns must be lists");
            goto fail;
        }
    }
    before = PyList_GET_SIZE(cols[C_TS]);
    Context ctx = {cols, NULL, NULL, NULL, NULL};
    Buf b = {(const uint8_t *)body.buf, (const uint8_t *)body.buf + body.len};
    while (b.p < b.end) {
        uint32_t field;
        int wt;
        Buf sub;
        if (read_tag(&b, &field, &wt) < 0) goto undo;
        if (field == 1 && EXPECT(wt, 2)) {
            if (read_bytes(&b, &sub) < 0 || read_resource_spans(&ctx, sub, drop_key) < 0) goto undo;
        } else if (skip_field(&b, wt) < 0) goto undo;
    }
    PyBuffer_Release(&body);
    return PyLong_FromSsize_t(PyList_GET_SIZE(cols[C_TS]) - before);
undo:
    /* No partial row survives an error: every column back to its length before the call. */
    {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        for (int i = 0; i < N_COLUMNS; i++) PyList_SetSlice(cols[i], before, PY_SSIZE_T_MAX, NULL);
        PyErr_Restore(type, value, tb);
    }
fail:
    PyBuffer_Release(&body);
    return NULL;
}

/* ---- a growable byte buffer (texts, flags, blocks, heads), varints ------------------- */

typedef struct {
    char *data;
    size_t len, cap;
} Out;

static int out_reserve(Out *o, size_t n) {
    if (o->len + n <= o->cap) return 0;
    size_t cap = o->cap ? o->cap : 1 << 16;
    while (cap < o->len + n) cap *= 2;
    char *grown = PyMem_Realloc(o->data, cap);
    if (!grown) {
        PyErr_NoMemory();
        return -1;
    }
    o->data = grown;
    o->cap = cap;
    return 0;
}

static int out_bytes(Out *o, const void *p, size_t n) {
    if (out_reserve(o, n) < 0) return -1;
    memcpy(o->data + o->len, p, n);
    o->len += n;
    return 0;
}

/* Protobuf's (and ClickHouse's) unsigned LEB128. */
static size_t varint_size(uint64_t n) {
    size_t k = 1;
    while (n >= 0x80) {
        n >>= 7;
        k++;
    }
    return k;
}

static uint8_t *put_varint(uint8_t *w, uint64_t n) {
    while (n >= 0x80) {
        *w++ = (uint8_t)(n | 0x80);
        n >>= 7;
    }
    *w++ = (uint8_t)n;
    return w;
}

/* ---- scan_texts: the strings redaction reads, joined by NUL ------------------------- */

typedef Out Text;

static int text_add(Text *t, Buf s) {
    static const char nul = '\0';
    size_t n = (size_t)(s.end - s.p);
    if (n == 0) return 0;
    return out_bytes(t, s.p, n) < 0 ? -1 : out_bytes(t, &nul, 1);
}

static int text_of_value(Text *t, Buf b, int depth);

/* The strings of an attribute list (KeyValue repeated at `field`) of message `b`. */
static int text_of_attributes(Text *t, Buf b, uint32_t attributes_field, int depth) {
    while (b.p < b.end) {
        uint32_t field;
        int wt;
        Buf kv, key, value;
        int has_value;
        if (read_tag(&b, &field, &wt) < 0) return -1;
        if (field == attributes_field && EXPECT(wt, 2)) {
            if (read_bytes(&b, &kv) < 0 || read_key_value(kv, &key, &value, &has_value) < 0) return -1;
            if (depth > 0 && text_add(t, key) < 0) return -1; /* a map value's keys, as its wire form holds them */
            if (has_value && text_of_value(t, value, depth) < 0) return -1;
        } else if (skip_field(&b, wt) < 0) return -1;
    }
    return 0;
}

static int text_of_value(Text *t, Buf b, int depth) {
    AnyValue v;
    if (depth > 64) return malformed("values nested too deep");
    if (read_any(b, &v) < 0) return -1;
    switch (v.kind) {
    case V_STRING: return text_add(t, v.bytes);
    case V_ARRAY: {
        Buf items = v.bytes;
        while (items.p < items.end) {
            uint32_t field;
            int wt;
            Buf item;
            if (read_tag(&items, &field, &wt) < 0) return -1;
            if (field == 1 && EXPECT(wt, 2)) {
                if (read_bytes(&items, &item) < 0 || text_of_value(t, item, depth + 1) < 0) return -1;
            } else if (skip_field(&items, wt) < 0) return -1;
        }
        return 0;
    }
    case V_KVLIST: return text_of_attributes(t, v.bytes, 1, depth + 1);
    default: return 0; /* numbers, bools, bytes: never scanned */
    }
}

static int attrs_1(void *t, Buf b) { return text_of_attributes(t, b, 1, 0); }
static int attrs_3(void *t, Buf b) { return text_of_attributes(t, b, 3, 0); }
static int status_text(void *t, Buf b) {
    Buf message = {b.p, b.p};
    uint64_t code;
    return read_status(b, &message, &code) < 0 ? -1 : text_add(t, message);
}

static int span_text(Text *t, Buf b) {
    if (text_of_attributes(t, b, 9, 0) < 0) return -1; /* attributes */
    if (each(t, b, 11, attrs_3) < 0) return -1;        /* events' attributes */
    return each(t, b, 15, status_text);                 /* status message */
}

/* A request's units, in walk order: each resource, then each of its scopes followed by that
 * scope's spans. `emit` takes the text gathered so far as the next unit and empties the
 * buffer: scan_texts makes it a Python string, gate_units runs the redaction gate on it. */
typedef struct Units Units;
struct Units {
    Text text;
    int (*emit)(Units *u);
    PyObject *texts;         /* scan_texts */
    const struct Gate *gate; /* gate_units, and its answer per unit */
    Out flags;
};

static int span_unit(void *ctx, Buf b) {
    Units *u = ctx;
    return span_text(&u->text, b) < 0 ? -1 : u->emit(u);
}

static int scope_spans_units(void *ctx, Buf b) {
    Units *u = ctx;
    if (each(&u->text, b, 1, attrs_3) < 0 || u->emit(u) < 0) return -1; /* the scope, wherever it sits */
    return each(ctx, b, 2, span_unit);
}

static int resource_spans_units(void *ctx, Buf b) {
    Units *u = ctx;
    if (each(&u->text, b, 1, attrs_1) < 0 || u->emit(u) < 0) return -1; /* the resource, wherever it sits */
    return each(ctx, b, 2, scope_spans_units);
}

static int each_unit(Units *u, const Py_buffer *body) {
    Buf b = {(const uint8_t *)body->buf, (const uint8_t *)body->buf + body->len};
    return each(u, b, 1, resource_spans_units);
}

static int text_unit(Units *u) {
    PyObject *unit = PyUnicode_DecodeUTF8(u->text.data ? u->text.data : "", (Py_ssize_t)u->text.len, NULL);
    u->text.len = 0;
    return append(u->texts, unit);
}

static PyObject *scan_texts(PyObject *self, PyObject *args) {
    Py_buffer body;
    if (!PyArg_ParseTuple(args, "y*:scan_texts", &body)) return NULL;
    Units u = {{NULL, 0, 0}, text_unit, PyList_New(0), NULL, {NULL, 0, 0}};
    if (u.texts && each_unit(&u, &body) < 0) Py_CLEAR(u.texts);
    PyMem_Free(u.text.data);
    PyBuffer_Release(&body);
    return u.texts;
}

/* ---- gate_units: the redaction gate over scan_texts' units, without Python strings ----- */

/* The detectors' gate of processors/redaction/detectors.py (Scanner.may_match), on a unit's
 * UTF-8 text: a literal a key detector's every match contains; an `@` and a domain after it;
 * a digit shape. It may say "may match" where the Python gate would not (a non-ASCII byte
 * counts as a word character for the domain), never the reverse: a unit it clears is one
 * the walk would leave unchanged. */
#define MAX_LITERALS 64

typedef struct Gate {
    Buf literal[MAX_LITERALS];
    uint8_t anchor_at[MAX_LITERALS]; /* the offset of the literal's anchor byte */
    uint8_t anchored[256];           /* byte -> 1 + index of its first literal, 0 = none */
    uint8_t next[MAX_LITERALS];      /* the next literal with the same anchor, 0 = none */
    uint8_t stops[256];              /* bytes a match can start a test at: anchors, @, +, digits */
    int n, email, digits;
} Gate;

static int is_digit(uint8_t c) { return c >= '0' && c <= '9'; }
static int is_alpha(uint8_t c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
static int is_domain_char(uint8_t c) { return is_alpha(c) || is_digit(c) || c == '_' || c == '-' || c >= 0x80; }

/* The byte of `lit` a scan stops at: the first that is neither a lowercase letter nor a digit
 * ("-" of "sk-", "K" of "AKIA"), which ordinary text holds fewer of; else the first. */
static int anchor_of(Buf lit) {
    for (const uint8_t *p = lit.p; p < lit.end; p++)
        if (!(*p >= 'a' && *p <= 'z') && !is_digit(*p)) return (int)(p - lit.p);
    return 0;
}

/* `@(?:[\w-]+\.)+[A-Za-z]{2,}` at `at` (the `@`). */
static int domain_after(const uint8_t *t, size_t at, size_t n) {
    size_t j = at + 1;
    for (;;) {
        size_t start = j;
        while (j < n && is_domain_char(t[j])) j++;
        if (j == start || j >= n || t[j] != '.') return 0;
        j++;
        if (j + 1 < n && is_alpha(t[j]) && is_alpha(t[j + 1])) return 1;
    }
}

static int digits_at(const uint8_t *t, size_t n, size_t at, size_t count) {
    if (at + count > n) return 0;
    for (size_t k = 0; k < count; k++)
        if (!is_digit(t[at + k])) return 0;
    return 1;
}

static int one_of(const uint8_t *t, size_t n, size_t at, const char *set) {
    return at < n && t[at] && strchr(set, t[at]) != NULL;
}

/* A digit detector's shape starting at `i`, digits as 0: 000-0000 (and . or space), 13 zeros,
 * 0000 0000 0000 0000 (or -), 0000 000000 0000 (or -), 000-00-0000 (detectors.py _DIGIT_SHAPES). */
static int digit_shape_at(const uint8_t *t, size_t n, size_t i) {
    if (!digits_at(t, n, i, 3)) return 0;
    size_t p = i + 3;
    if (one_of(t, n, p, "-. ") && digits_at(t, n, p + 1, 4)) return 1;
    if (digits_at(t, n, p, 10)) return 1;
    if (digits_at(t, n, p, 1) && one_of(t, n, p + 1, " -")) {
        if (digits_at(t, n, p + 2, 4) && one_of(t, n, p + 6, " -") && digits_at(t, n, p + 7, 4)) return 1;
        if (digits_at(t, n, p + 2, 6) && one_of(t, n, p + 8, " -") && digits_at(t, n, p + 9, 4)) return 1;
    }
    return one_of(t, n, p, "-") && digits_at(t, n, p + 1, 2) && one_of(t, n, p + 3, "-") && digits_at(t, n, p + 4, 4);
}

static int gate_hits(const Gate *g, const uint8_t *t, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint8_t c = t[i];
        if (!g->stops[c]) continue; /* most bytes: one table lookup */
        for (int k = g->anchored[c]; k; k = g->next[k - 1]) {
            const Buf *lit = &g->literal[k - 1];
            size_t len = (size_t)(lit->end - lit->p), off = g->anchor_at[k - 1];
            if (i >= off && i - off + len <= n && memcmp(t + i - off, lit->p, len) == 0) return 1;
        }
        if (g->email && c == '@' && domain_after(t, i, n)) return 1;
        if (g->digits && ((c == '+' && i + 1 < n && is_digit(t[i + 1])) || digit_shape_at(t, n, i))) return 1;
    }
    return 0;
}

static int flag_unit(Units *u) {
    uint8_t hit = (uint8_t)gate_hits(u->gate, (const uint8_t *)u->text.data, u->text.len);
    u->text.len = 0;
    return out_bytes(&u->flags, &hit, 1);
}

static PyObject *gate_units(PyObject *self, PyObject *args) {
    Py_buffer body;
    PyObject *literals;
    Gate g;
    memset(&g, 0, sizeof g);
    if (!PyArg_ParseTuple(args, "y*O!pp:gate_units", &body, &PyTuple_Type, &literals, &g.email, &g.digits))
        return NULL;
    PyObject *out = NULL;
    Units u = {{NULL, 0, 0}, flag_unit, NULL, &g, {NULL, 0, 0}};
    g.n = (int)PyTuple_GET_SIZE(literals);
    if (g.n > MAX_LITERALS) {
        PyErr_Format(PyExc_ValueError, "at most %d gate literals", MAX_LITERALS);
        goto done;
    }
    for (int k = g.n - 1; k >= 0; k--) { /* chains in declaration order */
        PyObject *lit = PyTuple_GET_ITEM(literals, k);
        if (!PyBytes_Check(lit) || PyBytes_GET_SIZE(lit) == 0 || PyBytes_GET_SIZE(lit) > 255) {
            PyErr_SetString(PyExc_TypeError, "gate literals must be non-empty bytes of at most 255");
            goto done;
        }
        g.literal[k].p = (const uint8_t *)PyBytes_AS_STRING(lit);
        g.literal[k].end = g.literal[k].p + PyBytes_GET_SIZE(lit);
        g.anchor_at[k] = (uint8_t)anchor_of(g.literal[k]);
        uint8_t c = g.literal[k].p[g.anchor_at[k]];
        g.next[k] = g.anchored[c];
        g.anchored[c] = (uint8_t)(k + 1);
        g.stops[c] = 1;
    }
    g.stops['@'] |= (uint8_t)g.email;
    g.stops['+'] |= (uint8_t)g.digits;
    for (int c = '0'; c <= '9'; c++) g.stops[c] |= (uint8_t)g.digits;
    if (each_unit(&u, &body) == 0)
        out = PyBytes_FromStringAndSize(u.flags.data ? u.flags.data : "", (Py_ssize_t)u.flags.len);
done:
    PyMem_Free(u.text.data);
    PyMem_Free(u.flags.data);
    PyBuffer_Release(&body);
    return out;
}

/* ---- attribute_values: each span's attributes as plain values -------------------------- */

static int span_values(void *list, Buf span) {
    Into into = {PyDict_New(), PLAIN};
    if (!into.out) return -1;
    if (each(&into, span, 9, put_python) < 0) {
        Py_DECREF(into.out);
        return -1;
    }
    return append(list, into.out);
}

static int scope_values(void *list, Buf scope_spans) { return each(list, scope_spans, 2, span_values); }
static int resource_values(void *list, Buf resource_spans) { return each(list, resource_spans, 2, scope_values); }

static PyObject *attribute_values(PyObject *self, PyObject *args) {
    Py_buffer body;
    if (!PyArg_ParseTuple(args, "y*:attribute_values", &body)) return NULL;
    PyObject *out = PyList_New(0);
    Buf b = {(const uint8_t *)body.buf, (const uint8_t *)body.buf + body.len};
    if (out && each(out, b, 1, resource_values) < 0) Py_CLEAR(out);
    PyBuffer_Release(&body);
    return out;
}

/* ---- native_block: columns -> one ClickHouse Native block --------------------------- */

/* ClickHouse's Native format, what clickhouse-connect writes per value in Python: a block is
 * varint(columns) varint(rows), then per column its name, its type and its data. Strings are
 * varint(length) bytes; numbers little-endian; Array(T) is the running end offsets (UInt64)
 * then the elements' data; Map(K, V) is Array(Tuple(K, V)): offsets, all keys, all values;
 * Nullable(T) is a null map (UInt8 per row) then T's data with zeros in the null rows. */
static int out_varint(Out *o, uint64_t v) {
    uint8_t buf[10];
    return out_bytes(o, buf, (size_t)(put_varint(buf, v) - buf));
}

static int out_u64(Out *o, uint64_t v) {
    uint8_t buf[8];
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(v >> (8 * i));
    return out_bytes(o, buf, 8);
}

static int out_str(Out *o, PyObject *s) {
    Py_ssize_t n;
    const char *p = PyUnicode_AsUTF8AndSize(s, &n);
    if (!p) return -1;
    return out_varint(o, (uint64_t)n) < 0 ? -1 : out_bytes(o, p, n);
}

/* An int as 8 bytes: signed (DateTime64, Decimal64) or unsigned (UInt64). */
static int out_int(Out *o, PyObject *v, int is_signed) {
    uint64_t bits;
    if (is_signed) {
        long long x = PyLong_AsLongLong(v);
        if (x == -1 && PyErr_Occurred()) return -1;
        bits = (uint64_t)x;
    } else {
        bits = PyLong_AsUnsignedLongLong(v);
        if (bits == (uint64_t)-1 && PyErr_Occurred()) return -1;
    }
    return out_u64(o, bits);
}

/* `value`'s items as a borrowed array (a list or a tuple). */
static PyObject **items_of(PyObject *value, Py_ssize_t *n, const char *what) {
    if (PyList_Check(value)) {
        *n = PyList_GET_SIZE(value);
        return ((PyListObject *)value)->ob_item;
    }
    if (PyTuple_Check(value)) {
        *n = PyTuple_GET_SIZE(value);
        return ((PyTupleObject *)value)->ob_item;
    }
    PyErr_Format(PyExc_TypeError, "native_block: %s values must be lists or tuples", what);
    return NULL;
}

/* Offsets of `n` containers whose sizes `size_of` gives. */
static int out_offsets(Out *o, PyObject **rows, Py_ssize_t n, Py_ssize_t (*size_of)(PyObject *)) {
    uint64_t end = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t size = size_of(rows[i]);
        if (size < 0) return -1;
        end += (uint64_t)size;
        if (out_u64(o, end) < 0) return -1;
    }
    return 0;
}

static Py_ssize_t dict_size(PyObject *d) {
    if (!PyDict_Check(d)) {
        PyErr_SetString(PyExc_TypeError, "native_block: map values must be dicts");
        return -1;
    }
    return PyDict_GET_SIZE(d);
}

static Py_ssize_t seq_size(PyObject *s) {
    Py_ssize_t n;
    return items_of(s, &n, "array") ? n : -1;
}

/* Map(String, String) rows: offsets, keys, values. */
static int out_maps(Out *o, PyObject **maps, Py_ssize_t n) {
    if (out_offsets(o, maps, n, dict_size) < 0) return -1;
    for (int pass = 0; pass < 2; pass++) {
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_ssize_t pos = 0;
            PyObject *k, *v;
            while (PyDict_Next(maps[i], &pos, &k, &v))
                if (out_str(o, pass ? v : k) < 0) return -1;
        }
    }
    return 0;
}

/* The elements of `n` array rows, flattened into a new list. */
static PyObject *flatten(PyObject **rows, Py_ssize_t n) {
    PyObject *flat = PyList_New(0);
    for (Py_ssize_t i = 0; flat && i < n; i++) {
        Py_ssize_t m;
        PyObject **items = items_of(rows[i], &m, "array");
        for (Py_ssize_t j = 0; items && j < m; j++)
            if (PyList_Append(flat, items[j]) < 0) items = NULL;
        if (!items) Py_CLEAR(flat);
    }
    return flat;
}

static int out_column(Out *o, char code, PyObject **rows, Py_ssize_t n) {
    switch (code) {
    case 's':
        for (Py_ssize_t i = 0; i < n; i++)
            if (out_str(o, rows[i]) < 0) return -1;
        return 0;
    case 'i':
    case 'u':
        for (Py_ssize_t i = 0; i < n; i++)
            if (out_int(o, rows[i], code == 'i') < 0) return -1;
        return 0;
    case 'b':
        for (Py_ssize_t i = 0; i < n; i++) {
            int truth = PyObject_IsTrue(rows[i]);
            uint8_t byte = (uint8_t)truth;
            if (truth < 0 || out_bytes(o, &byte, 1) < 0) return -1;
        }
        return 0;
    case 'n': /* Nullable(UInt64) */
    case 'd': /* Nullable(Decimal64): the scaled ints */
        for (Py_ssize_t i = 0; i < n; i++) {
            uint8_t null = rows[i] == Py_None;
            if (out_bytes(o, &null, 1) < 0) return -1;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            int rc = rows[i] == Py_None ? out_u64(o, 0) : out_int(o, rows[i], code == 'd');
            if (rc < 0) return -1;
        }
        return 0;
    case 'm': return out_maps(o, rows, n);
    case 'S':
    case 'T':
    case 'M': {
        if (out_offsets(o, rows, n, seq_size) < 0) return -1;
        PyObject *flat = flatten(rows, n);
        if (!flat) return -1;
        int rc = out_column(o, code == 'S' ? 's' : code == 'T' ? 'i' : 'm',
                            ((PyListObject *)flat)->ob_item, PyList_GET_SIZE(flat));
        Py_DECREF(flat);
        return rc;
    }
    default:
        PyErr_Format(PyExc_ValueError, "native_block: unknown column code %c", code);
        return -1;
    }
}

static PyObject *native_block(PyObject *self, PyObject *args) {
    PyObject *names, *types, *columns;
    const char *codes;
    Py_ssize_t ncodes;
    if (!PyArg_ParseTuple(args, "O!O!s#O!:native_block", &PyList_Type, &names, &PyList_Type, &types, &codes,
                          &ncodes, &PyList_Type, &columns))
        return NULL;
    Py_ssize_t ncols = PyList_GET_SIZE(columns);
    if (PyList_GET_SIZE(names) != ncols || PyList_GET_SIZE(types) != ncols || ncodes != ncols) {
        PyErr_SetString(PyExc_ValueError, "native_block: names, types, codes and columns differ in length");
        return NULL;
    }
    Py_ssize_t rows = ncols ? -1 : 0;
    Out o = {NULL, 0, 0};
    for (Py_ssize_t c = 0; c < ncols; c++) {
        Py_ssize_t n;
        if (!items_of(PyList_GET_ITEM(columns, c), &n, "column")) return NULL;
        if (rows >= 0 && n != rows) {
            PyErr_Format(PyExc_ValueError, "native_block: column %zd has %zd rows, not %zd", c, n, rows);
            return NULL;
        }
        rows = n;
    }
    if (out_varint(&o, (uint64_t)ncols) < 0 || out_varint(&o, (uint64_t)rows) < 0) goto fail;
    for (Py_ssize_t c = 0; c < ncols; c++) {
        Py_ssize_t n = 0;
        PyObject **items = items_of(PyList_GET_ITEM(columns, c), &n, "column");
        if (out_str(&o, PyList_GET_ITEM(names, c)) < 0 || out_str(&o, PyList_GET_ITEM(types, c)) < 0)
            goto fail;
        if (out_column(&o, codes[c], items, n) < 0) {
            /* Name the column: a value out of its range (a time past 2262) is the data's fault. */
            PyObject *type, *value, *tb;
            PyErr_Fetch(&type, &value, &tb);
            PyErr_NormalizeException(&type, &value, &tb);
            PyErr_Format(type, "column %U: %S", PyList_GET_ITEM(names, c), value);
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(tb);
            goto fail;
        }
    }
    PyObject *block = PyBytes_FromStringAndSize(o.data, (Py_ssize_t)o.len);
    PyMem_Free(o.data);
    return block;
fail:
    PyMem_Free(o.data);
    return NULL;
}

/* ---- spans_valid: the receivers' id and time checks, before any walk ------------------- */

#define MAX_TIME_NS 0x7fffffffffffffffull /* DateTime64(9) is an Int64 (ingest/otlp/validate.py) */

static int all_zero(Buf s) {
    for (const uint8_t *p = s.p; p < s.end; p++)
        if (*p) return 0;
    return 1;
}

static int event_time_ok(void *unused, Buf event) {
    uint64_t time = 0;
    const Want wants[] = {{1, 1, &time, NULL}};
    (void)unused;
    if (read_fields(event, wants, 1, 0, NULL) < 0) return -1;
    return time <= MAX_TIME_NS ? 0 : 1; /* 1 stops `each` short of an error: see span_ok */
}

/* 0 when the span passes validate.py's checks, 1 when it does not, -1 on an error. */
static int span_ok(void *unused, Buf span) {
    Buf none = {span.p, span.p}, trace = none, id = none, parent = none;
    uint64_t start = 0, end = 0;
    const Want wants[] = {{1, 2, NULL, &trace}, {2, 2, NULL, &id}, {4, 2, NULL, &parent},
                          {7, 1, &start, NULL}, {8, 1, &end, NULL}};
    (void)unused;
    if (read_fields(span, wants, 5, 0, NULL) < 0) return -1;
    if (trace.end - trace.p != 16 || all_zero(trace) || id.end - id.p != 8 || all_zero(id)) return 1;
    if (parent.end != parent.p && parent.end - parent.p != 8) return 1;
    if (start > MAX_TIME_NS || end > MAX_TIME_NS) return 1;
    return each_until(NULL, span, 11, event_time_ok);
}

static int scope_spans_ok(void *unused, Buf b) { return each_until(unused, b, 2, span_ok); }
static int resource_spans_ok(void *unused, Buf b) { return each_until(unused, b, 2, scope_spans_ok); }

static PyObject *spans_valid(PyObject *self, PyObject *args) {
    Py_buffer body;
    if (!PyArg_ParseTuple(args, "y*:spans_valid", &body)) return NULL;
    Buf b = {(const uint8_t *)body.buf, (const uint8_t *)body.buf + body.len};
    int rc = each_until(NULL, b, 1, resource_spans_ok);
    PyBuffer_Release(&body);
    if (rc < 0) return NULL;
    return PyBool_FromLong(rc == 0);
}

/* ---- split_by_trace: a request as one request per trace, from its bytes -------------- */

/* Every field but the repeated child (field 2) of a ResourceSpans or ScopeSpans is its
 * "head" (resource or scope, schema_url, unknown fields), copied as it came; a trace's
 * request repeats the heads of the resources and scopes its spans sit under. */
typedef struct { size_t off, len; } Head;
typedef struct { Buf body; uint32_t scope, next; } SpanRef;
typedef struct { Head head; uint32_t resource; } ScopeRef;
typedef struct { Buf id; uint32_t first, last, count; } Group;

#define NONE UINT32_MAX

typedef struct {
    Out heads;
    Head *resources;
    ScopeRef *scopes;
    SpanRef *spans;
    Group *groups;
    uint32_t *table; /* open addressing: group index + 1, 0 = empty */
    size_t n_resources, n_scopes, n_spans, n_groups, table_size;
    size_t cap_resources, cap_scopes, cap_spans, cap_groups;
} Split;

static int grow(void **items, size_t *cap, size_t n, size_t size) {
    if (n < *cap) return 0;
    size_t want = *cap ? *cap * 2 : 64;
    void *grown = PyMem_Realloc(*items, want * size);
    if (!grown) {
        PyErr_NoMemory();
        return -1;
    }
    *items = grown;
    *cap = want;
    return 0;
}

#define GROW(s, name) grow((void **)&(s)->name, &(s)->cap_##name, (s)->n_##name, sizeof(*(s)->name))

static void split_free(Split *s) {
    PyMem_Free(s->heads.data);
    PyMem_Free(s->resources);
    PyMem_Free(s->scopes);
    PyMem_Free(s->spans);
    PyMem_Free(s->groups);
    PyMem_Free(s->table);
}

/* Copies every field of `msg` but field 2 into s->heads. */
static int copy_head(Split *s, Buf msg, Head *head) {
    head->off = s->heads.len;
    while (msg.p < msg.end) {
        const uint8_t *start = msg.p;
        uint32_t field;
        int wt;
        if (read_tag(&msg, &field, &wt) < 0 || skip_field(&msg, wt) < 0) return -1;
        if (!(field == 2 && wt == 2) && out_bytes(&s->heads, start, (size_t)(msg.p - start)) < 0) return -1;
    }
    head->len = s->heads.len - head->off;
    return 0;
}

static uint64_t id_hash(Buf id) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const uint8_t *p = id.p; p < id.end; p++) h = (h ^ *p) * 1099511628211ULL;
    return h;
}

static int same_id(Buf a, Buf b) {
    return (a.end - a.p) == (b.end - b.p) && memcmp(a.p, b.p, (size_t)(a.end - a.p)) == 0;
}

static int rehash(Split *s) {
    size_t size = s->table_size ? s->table_size * 2 : 1024;
    uint32_t *table = PyMem_Calloc(size, sizeof(uint32_t));
    if (!table) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t g = 0; g < s->n_groups; g++) {
        size_t i = (size_t)id_hash(s->groups[g].id) & (size - 1);
        while (table[i]) i = (i + 1) & (size - 1);
        table[i] = (uint32_t)g + 1;
    }
    PyMem_Free(s->table);
    s->table = table;
    s->table_size = size;
    return 0;
}

/* The group of trace `id`, created at its first span. */
static int group_of(Split *s, Buf id, uint32_t *out) {
    if ((s->n_groups + 1) * 2 > s->table_size && rehash(s) < 0) return -1;
    size_t mask = s->table_size - 1, i = (size_t)id_hash(id) & mask;
    while (s->table[i]) {
        uint32_t g = s->table[i] - 1;
        if (same_id(s->groups[g].id, id)) {
            *out = g;
            return 0;
        }
        i = (i + 1) & mask;
    }
    if (GROW(s, groups) < 0) return -1;
    s->groups[s->n_groups] = (Group){id, NONE, NONE, 0};
    s->table[i] = (uint32_t)s->n_groups + 1;
    *out = (uint32_t)s->n_groups++;
    return 0;
}

static int split_span(void *ctx, Buf span) {
    Split *s = ctx;
    Buf id = {span.p, span.p}, b = span; /* no trace_id: the empty id, as protobuf reads it */
    while (b.p < b.end) {
        uint32_t field;
        int wt;
        if (read_tag(&b, &field, &wt) < 0) return -1;
        if (field == 1 && wt == 2) {
            if (read_bytes(&b, &id) < 0) return -1; /* a repeated field: the last one counts */
        } else if (skip_field(&b, wt) < 0) return -1;
    }
    uint32_t g;
    if (group_of(s, id, &g) < 0 || GROW(s, spans) < 0) return -1;
    uint32_t i = (uint32_t)s->n_spans++;
    s->spans[i] = (SpanRef){span, (uint32_t)s->n_scopes - 1, NONE};
    Group *group = &s->groups[g];
    if (group->last == NONE) group->first = i;
    else s->spans[group->last].next = i;
    group->last = i;
    group->count++;
    return 0;
}

static int split_scope(void *ctx, Buf scope_spans) {
    Split *s = ctx;
    if (GROW(s, scopes) < 0) return -1;
    ScopeRef *scope = &s->scopes[s->n_scopes];
    scope->resource = (uint32_t)s->n_resources - 1;
    if (copy_head(s, scope_spans, &scope->head) < 0) return -1;
    s->n_scopes++;
    return each(s, scope_spans, 2, split_span);
}

static int split_resource(void *ctx, Buf resource_spans) {
    Split *s = ctx;
    if (GROW(s, resources) < 0 || copy_head(s, resource_spans, &s->resources[s->n_resources]) < 0) return -1;
    s->n_resources++;
    return each(s, resource_spans, 2, split_scope);
}

static size_t field_size(size_t body) { return 1 + varint_size(body) + body; }

/* One trace's request. Its spans are in walk order, so its scopes (and resources) come in
 * runs: one ScopeSpans per run of a scope, one ResourceSpans per run of a resource. The
 * runs' body sizes are measured first (into `sizes`, in write order), then written. */
static PyObject *group_request(Split *s, const Group *g, size_t *sizes) {
    size_t total = 0, n = 0;
    for (uint32_t i = g->first; i != NONE;) {
        uint32_t r = s->scopes[s->spans[i].scope].resource;
        size_t at = n++, body = s->resources[r].len;
        while (i != NONE && s->scopes[s->spans[i].scope].resource == r) {
            uint32_t sc = s->spans[i].scope;
            size_t sat = n++, sbody = s->scopes[sc].head.len;
            for (; i != NONE && s->spans[i].scope == sc; i = s->spans[i].next)
                sbody += field_size((size_t)(s->spans[i].body.end - s->spans[i].body.p));
            sizes[sat] = sbody;
            body += field_size(sbody);
        }
        sizes[at] = body;
        total += field_size(body);
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
    if (!out) return NULL;
    uint8_t *w = (uint8_t *)PyBytes_AS_STRING(out);
    n = 0;
    for (uint32_t i = g->first; i != NONE;) {
        uint32_t r = s->scopes[s->spans[i].scope].resource;
        *w++ = 0x0a;
        w = put_varint(w, sizes[n++]);
        memcpy(w, s->heads.data + s->resources[r].off, s->resources[r].len);
        w += s->resources[r].len;
        while (i != NONE && s->scopes[s->spans[i].scope].resource == r) {
            uint32_t sc = s->spans[i].scope;
            *w++ = 0x12;
            w = put_varint(w, sizes[n++]);
            memcpy(w, s->heads.data + s->scopes[sc].head.off, s->scopes[sc].head.len);
            w += s->scopes[sc].head.len;
            for (; i != NONE && s->spans[i].scope == sc; i = s->spans[i].next) {
                size_t len = (size_t)(s->spans[i].body.end - s->spans[i].body.p);
                *w++ = 0x12;
                w = put_varint(w, len);
                memcpy(w, s->spans[i].body.p, len);
                w += len;
            }
        }
    }
    return out;
}

static PyObject *split_by_trace(PyObject *self, PyObject *args) {
    Py_buffer body;
    if (!PyArg_ParseTuple(args, "y*:split_by_trace", &body)) return NULL;
    Split s = {0};
    PyObject *out = NULL;
    size_t *sizes = NULL;
    Buf b = {(const uint8_t *)body.buf, (const uint8_t *)body.buf + body.len};
    if (each(&s, b, 1, split_resource) < 0) goto done;
    if (!(sizes = PyMem_Malloc((2 * s.n_spans + 1) * sizeof(size_t)))) {
        PyErr_NoMemory();
        goto done;
    }
    if (!(out = PyList_New((Py_ssize_t)s.n_groups))) goto done;
    for (size_t g = 0; g < s.n_groups; g++) {
        Group *group = &s.groups[g];
        PyObject *item = Py_BuildValue("(y#NI)", (const char *)group->id.p, (Py_ssize_t)(group->id.end - group->id.p),
                                       group_request(&s, group, sizes), (unsigned int)group->count);
        if (!item) {
            Py_CLEAR(out);
            goto done;
        }
        PyList_SET_ITEM(out, (Py_ssize_t)g, item);
    }
done:
    PyMem_Free(sizes);
    split_free(&s);
    PyBuffer_Release(&body);
    return out;
}

/* ---- murmur2: Kafka's key hash (the Java client's Utils.murmur2), for the partitioner ---- */

static PyObject *murmur2(PyObject *self, PyObject *args) {
    Py_buffer key;
    if (!PyArg_ParseTuple(args, "y*:murmur2", &key)) return NULL;
    const uint8_t *d = key.buf;
    size_t n = (size_t)key.len;
    const uint32_t m = 0x5bd1e995;
    uint32_t h = 0x9747b28cu ^ (uint32_t)n;
    for (size_t i = 0; i + 4 <= n; i += 4) {
        uint32_t k = (uint32_t)d[i] | (uint32_t)d[i + 1] << 8 | (uint32_t)d[i + 2] << 16 | (uint32_t)d[i + 3] << 24;
        k *= m;
        k ^= k >> 24;
        k *= m;
        h = h * m ^ k;
    }
    size_t tail = n & ~(size_t)3;
    switch (n & 3) {
    case 3: h ^= (uint32_t)d[tail + 2] << 16; /* fall through */
    case 2: h ^= (uint32_t)d[tail + 1] << 8;  /* fall through */
    case 1:
        h ^= d[tail];
        h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    PyBuffer_Release(&key);
    return PyLong_FromUnsignedLong(h);
}

static PyObject *configure(PyObject *self, PyObject *args) {
    PyObject *enc, *fmt, *finite, *b64;
    if (!PyArg_ParseTuple(args, "OOOO:configure", &enc, &fmt, &finite, &b64)) return NULL;
    PyObject *old[4] = {json_encode, format_double, finite_or_text, base64_text};
    Py_INCREF(enc); json_encode = enc;
    Py_INCREF(fmt); format_double = fmt;
    Py_INCREF(finite); finite_or_text = finite;
    Py_INCREF(b64); base64_text = b64;
    for (int i = 0; i < 4; i++) Py_XDECREF(old[i]);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"append_spans", append_spans, METH_VARARGS,
     "append_spans(body, columns, drop_resource_key) -> int\n\n"
     "Append a row for every span of a serialized ExportTraceServiceRequest to the 22 base column\n"
     "lists, without the resource attribute `drop_resource_key`; returns the number of spans. On an\n"
     "error no row is appended."},
    {"scan_texts", scan_texts, METH_VARARGS,
     "scan_texts(body) -> list[str]\n\n"
     "The strings the redaction processor scans in a serialized ExportTraceServiceRequest, one text\n"
     "per attribute map owner in walk order: each resource, then each of its scopes followed by\n"
     "that scope's spans. A resource's or scope's text holds its attribute values; a span's its\n"
     "attribute values, its events' and its status message. Nested values count, with their map\n"
     "keys; each string is followed by NUL."},
    {"gate_units", gate_units, METH_VARARGS,
     "gate_units(body, literals, email, digits) -> bytes\n\n"
     "For each of scan_texts' units of a serialized ExportTraceServiceRequest, 1 when the redaction\n"
     "gate says a detector may match its text, else 0: a text holding one of `literals` (bytes), with\n"
     "`email`, an @ followed by a domain, with `digits`, a digit detector's shape. Never 0 where\n"
     "detectors.Scanner.may_match is true."},
    {"attribute_values", attribute_values, METH_VARARGS,
     "attribute_values(body) -> list[dict]\n\n"
     "Every span's attributes in a serialized ExportTraceServiceRequest, in walk order, as\n"
     "{key: value} with anyvalue.to_python's plain values (a repeated key keeps its last value)."},
    {"native_block", native_block, METH_VARARGS,
     "native_block(names, types, codes, columns) -> bytes\n\n"
     "One ClickHouse Native block of these columns (lists or tuples of equal length), each named,\n"
     "typed and encoded by its one-letter code: s String, i Int64 (DateTime64), u UInt64, b Bool,\n"
     "n Nullable(UInt64), d Nullable(Decimal64) as scaled ints, m Map(String, String) from dicts,\n"
     "S / T / M arrays of s / i / m."},
    {"spans_valid", spans_valid, METH_VARARGS,
     "spans_valid(body) -> bool\n\n"
     "Whether every span of a serialized ExportTraceServiceRequest passes the receivers' checks\n"
     "(ingest/otlp/validate.py): 16-byte non-zero trace id, 8-byte non-zero span id, parent empty or\n"
     "8 bytes, start, end and event times that fit an Int64. False sends the caller to the walk\n"
     "that finds and describes the spans to drop."},
    {"split_by_trace", split_by_trace, METH_VARARGS,
     "split_by_trace(body) -> list[tuple[bytes, bytes, int]]\n\n"
     "A serialized ExportTraceServiceRequest as one request per trace: (trace_id, serialized request,\n"
     "span count) in the order of each trace's first span. Each span keeps its bytes and its resource\n"
     "and scope (their other fields as they came); a trace's spans keep their order, one\n"
     "ResourceSpans per run of a resource and one ScopeSpans per run of a scope."},
    {"murmur2", murmur2, METH_VARARGS,
     "murmur2(key) -> int\n\n"
     "Kafka's murmur2 hash of a record key (unsigned 32 bits), as the Java client and\n"
     "aiokafka.partitioner.murmur2 compute it: what the default partitioner maps keys with."},
    {"configure", configure, METH_VARARGS,
     "configure(json_encode, format_double, finite_or_text, base64_text): the Python renderings."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_otlpwire", NULL, -1, methods};

PyMODINIT_FUNC PyInit__otlpwire(void) {
    static const char *kinds[6] = {"Unspecified", "Internal", "Server", "Client", "Producer", "Consumer"};
    static const char *codes[3] = {"Unset", "Ok", "Error"};
    empty_tuple = PyTuple_New(0);
    empty_str = PyUnicode_InternFromString("");
    true_str = PyUnicode_InternFromString("true");
    false_str = PyUnicode_InternFromString("false");
    service_key = PyUnicode_InternFromString("service.name");
    if (!empty_tuple || !empty_str || !true_str || !false_str || !service_key) return NULL;
    for (int i = 0; i < 6; i++)
        if (!(kind_names[i] = PyUnicode_InternFromString(kinds[i]))) return NULL;
    for (int i = 0; i < 3; i++)
        if (!(status_names[i] = PyUnicode_InternFromString(codes[i]))) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m && (PyModule_AddIntConstant(m, "N_COLUMNS", N_COLUMNS) < 0)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
