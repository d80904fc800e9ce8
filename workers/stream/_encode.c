/* Native fast path of workers.stream.records: a run of docker log lines to JSON records.
 *
 *     encode_run(run: bytes, head: bytes, seq: int) -> tuple[bytes, int] | None
 *
 * Contract: for a run of complete lines, the same bytes as the pure-Python fast path
 * (records.encode_run_python) and the number of lines, or None wherever that path
 * returns None (a line without a fixed-width timestamp and a space, invalid UTF-8, a
 * DEL byte, an empty run), and also for a run not ending in '\n' or a seq outside
 * [0, 10^17), so the caller takes the slow path for that run. One record:
 *
 *     {"seq":N,<head>,"ts":"<30-byte timestamp>","line":"<text escaped as orjson does>"}\n
 *
 * Two passes over the input: the first validates and computes the exact output size,
 * the second writes. The output is allocated once, at its final size: the limited C API
 * cannot shrink a bytes object, and a worst-case buffer (6x for \u00xx escapes, plus a
 * record head per 32 bytes) costs more in fresh pages than the first pass does. Neither
 * pass touches Python objects, so both run without the GIL.
 */
#define PY_SSIZE_T_CLEAN
#define Py_LIMITED_API 0x030B0000
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define TS_WIDTH 30 /* "2024-01-02T03:04:05.123456789Z"; the line's text starts after one space */

static const char SEQ_OPEN[] = "{\"seq\":";
static const char TS_OPEN[] = ",\"ts\":\"";
static const char LINE_OPEN[] = "\",\"line\":\"";
static const char RECORD_CLOSE[] = "\"}\n";
#define LIT(s) (sizeof(s) - 1)
/* Everything in a record but the seq digits, the head and the escaped text. */
#define RECORD_FIXED (LIT(SEQ_OPEN) + 1 /* comma after seq */ + LIT(TS_OPEN) + TS_WIDTH + LIT(LINE_OPEN) + LIT(RECORD_CLOSE))

/* seq stays below this, so that seq + lines (fewer than 2^58 in any run) and the power
 * of ten after it fit in a long long. */
#define SEQ_LIMIT 100000000000000000LL

/* Byte classes of the text. orjson escapes '"', '\\' and U+0000-U+001F only: the five
 * short forms \b \t \n \f \r, \u00xx (lowercase hex) for the rest; DEL and non-ASCII are
 * written as they are. DEL is refused because the Python path uses it as its separator. */
enum { P /* plain */, S /* short escape */, U /* \u00xx */, N /* newline */, X /* refuse */ };
/* clang-format off */
static const unsigned char ASCII_CLASS[128] = {
    /* 0x00 */ U, U, U, U, U, U, U, U, S, S, N, U, S, S, U, U,
    /* 0x10 */ U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U,
    /* 0x20 */ P, P, S, P, P, P, P, P, P, P, P, P, P, P, P, P,
    /* 0x30 */ P, P, P, P, P, P, P, P, P, P, P, P, P, P, P, P,
    /* 0x40 */ P, P, P, P, P, P, P, P, P, P, P, P, P, P, P, P,
    /* 0x50 */ P, P, P, P, P, P, P, P, P, P, P, P, S, P, P, P,
    /* 0x60 */ P, P, P, P, P, P, P, P, P, P, P, P, P, P, P, P,
    /* 0x70 */ P, P, P, P, P, P, P, P, P, P, P, P, P, P, P, X,
};
/* clang-format on */

static inline char short_escape(unsigned char c) {
    switch (c) {
    case '\b': return 'b';
    case '\t': return 't';
    case '\f': return 'f';
    case '\r': return 'r';
    default: return (char)c; /* '"' and '\\' escape as themselves */
    }
}

/* Text is tested eight bytes at a time: byte-wise arithmetic on a 64-bit word, where no
 * carry or borrow crosses from one byte to the next as long as every byte is below 0x80. */
#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

static inline uint64_t load8(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Nonzero if a byte of v is not ASCII or lies outside [lo, hi] (the same byte of lo and
 * hi, all below 0x80): v + 0x7f - hi reaches 0x80 iff v > hi; (v | 0x80) - lo stays
 * at or above 0x80 iff v >= lo. */
static inline uint64_t out_of_range(uint64_t v, uint64_t lo, uint64_t hi) {
    return (v | (v + (ONES * 0x7f - hi)) | ~((v | HIGHS) - lo)) & HIGHS;
}

/* A line starts with a fixed-width timestamp and a space, as the Python side's regex
 * requires: any ASCII digit where TS_LO has '0', exactly TS_LO's byte elsewhere. */
static const unsigned char TS_LO[] = "0000-00-00T00:00:00.000000000Z ";
static const unsigned char TS_HI[] = "9999-99-99T99:99:99.999999999Z ";

static inline int has_timestamp(const unsigned char *p, const unsigned char *end) {
    if (end - p < TS_WIDTH + 2) return 0; /* + the space and at least the newline */
    uint64_t bad = 0;
    /* 31 bytes as four words, the last one overlapping the third. */
    for (int i = 0; i < 32; i += 8) {
        int at = i < 24 ? i : TS_WIDTH + 1 - 8;
        bad |= out_of_range(load8(p + at), load8(TS_LO + at), load8(TS_HI + at));
    }
    return bad == 0;
}

/* How many of the eight bytes at p are plain (no control, '"', '\\', DEL or non-ASCII
 * byte), counting from the first. In a word loaded little-endian with all bytes below
 * 0x80, (v - n * ones) flags the first byte below n exactly (a borrow only travels
 * towards later bytes); the bytes equal to c are those below 1 in v ^ c. */
static inline int plain8(const unsigned char *p) {
    uint64_t v = load8(p);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    uint64_t special =
        (v | (v - ONES * 0x20) | ((v ^ ONES * '"') - ONES) | ((v ^ ONES * '\\') - ONES) | ((v ^ ONES * 0x7f) - ONES)) &
        HIGHS;
    if (!special) return 8;
#if defined(__GNUC__)
    return __builtin_ctzll(special) / 8;
#else
    int n = 0;
    for (; !(special & 0x80); special >>= 8) n++;
    return n;
#endif
}

/* The first byte at or after p that is not plain: at the latest the line's newline
 * (every line ends with one, so this never passes `end`). */
static inline const unsigned char *plain_span(const unsigned char *p, const unsigned char *end) {
    for (; end - p >= 8; p += 8) {
        int n = plain8(p);
        if (n < 8) return p + n;
    }
    while (*p < 0x80 && ASCII_CLASS[*p] == P) p++;
    return p;
}

/* Length of the valid UTF-8 sequence at p (2-4), or 0. Strict like Python's decoder:
 * no overlong forms, no surrogates, nothing above U+10FFFF. Never reads past a '\n'
 * (not a continuation byte), and the run ends with one. */
static int utf8_len(const unsigned char *p) {
    unsigned char c = p[0], lo = 0x80, hi = 0xBF;
    int n;
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c >= 0xE0 && c <= 0xEF) n = 3;
    else if (c >= 0xF0 && c <= 0xF4) n = 4;
    else return 0;
    if (c == 0xE0) lo = 0xA0;      /* overlong */
    else if (c == 0xED) hi = 0x9F; /* surrogates */
    else if (c == 0xF0) lo = 0x90; /* overlong */
    else if (c == 0xF4) hi = 0x8F; /* above U+10FFFF */
    if (p[1] < lo || p[1] > hi) return 0;
    for (int i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xBF) return 0;
    return n;
}

/* Pass 1: validate, count lines, compute the exact output size. -1: not a regular run. */
static Py_ssize_t measure(const unsigned char *p, const unsigned char *end, Py_ssize_t head_len, long long seq,
                          Py_ssize_t *lines) {
    Py_ssize_t size = 0, count = 0;
    int digits = 1;
    long long next_power = 10;
    while (seq >= next_power) digits++, next_power *= 10;
    while (p < end) {
        if (!has_timestamp(p, end)) return -1;
        p += TS_WIDTH + 1;
        for (;;) {
            const unsigned char *plain_end = plain_span(p, end);
            size += plain_end - p;
            p = plain_end;
            unsigned char c = *p;
            if (c == '\n') break;
            if (c == 0x7f) return -1;
            if (c >= 0x80) {
                int n = utf8_len(p);
                if (n == 0) return -1;
                p += n, size += n;
            } else {
                p++, size += ASCII_CLASS[c] == S ? 2 : 6;
            }
        }
        p++; /* the newline */
        if (seq + count == next_power) digits++, next_power *= 10;
        size += (Py_ssize_t)RECORD_FIXED + head_len + digits;
        count++;
    }
    *lines = count;
    return count ? size : -1;
}

/* Room for `{"seq":N,<head>,"ts":"` with N of up to 18 digits (seq + lines < 10^18). */
#define SEQ_DIGITS_MAX 18
#define PREFIX_ROOM(head_len) (LIT(SEQ_OPEN) + SEQ_DIGITS_MAX + 1 + (size_t)(head_len) + LIT(TS_OPEN))

/* Pass 2: write the records of a run that measure() accepted. `room` has PREFIX_ROOM
 * bytes: there, the text before each timestamp is kept ready so that a record starts with
 * one copy; N is right-aligned before the comma and incremented in place, and `{"seq":`
 * moves one byte left when N gains a digit. */
static void write_records(const unsigned char *p, const unsigned char *end, const char *head, Py_ssize_t head_len,
                          long long seq, char *o, const char *o_end, char *room) {
    static const char HEX[] = "0123456789abcdef";
    char *comma = room + LIT(SEQ_OPEN) + SEQ_DIGITS_MAX, *prefix_end = comma + 1 + head_len + LIT(TS_OPEN);
    char *digits = comma;
    do *--digits = (char)('0' + seq % 10);
    while ((seq /= 10) > 0);
    char *prefix = digits - LIT(SEQ_OPEN);
    memcpy(prefix, SEQ_OPEN, LIT(SEQ_OPEN));
    *comma = ',';
    memcpy(comma + 1, head, (size_t)head_len);
    memcpy(prefix_end - LIT(TS_OPEN), TS_OPEN, LIT(TS_OPEN));

    while (p < end) {
        memcpy(o, prefix, (size_t)(prefix_end - prefix)), o += prefix_end - prefix;
        memcpy(o, p, TS_WIDTH), o += TS_WIDTH;
        memcpy(o, LINE_OPEN, LIT(LINE_OPEN)), o += LIT(LINE_OPEN);
        p += TS_WIDTH + 1;
        for (;;) {
            if (end - p >= 8 && o_end - o >= 8) {
                /* The whole word is copied (one store, no memcpy call per span); the
                 * bytes after its plain ones are overwritten by what comes next. */
                int n = plain8(p);
                memcpy(o, p, 8);
                p += n, o += n;
                if (n == 8) continue;
            } else {
                while (*p < 0x80 && ASCII_CLASS[*p] == P) *o++ = (char)*p++;
            }
            unsigned char c = *p;
            if (c == '\n') break;
            p++;
            if (c >= 0x80) {
                *o++ = (char)c; /* UTF-8, validated by measure(); its other bytes are >= 0x80 too */
            } else if (ASCII_CLASS[c] == S) {
                *o++ = '\\', *o++ = short_escape(c);
            } else {
                memcpy(o, "\\u00", 4), o += 4;
                *o++ = HEX[c >> 4], *o++ = HEX[c & 15];
            }
        }
        p++;
        memcpy(o, RECORD_CLOSE, LIT(RECORD_CLOSE)), o += LIT(RECORD_CLOSE);

        char *d = comma - 1; /* seq += 1, carrying */
        while (d >= digits && *d == '9') *d-- = '0';
        if (d >= digits) {
            ++*d;
        } else {
            *--digits = '1';
            memcpy(--prefix, SEQ_OPEN, LIT(SEQ_OPEN));
        }
    }
}

static PyObject *encode_run(PyObject *self, PyObject *args) {
    PyObject *run_obj, *head_obj, *seq_obj;
    char *run, *head;
    Py_ssize_t run_len, head_len, lines = 0, size;
    int overflow;
    (void)self;
    /* bytes only ("S"), not any buffer: the scans run without the GIL and the second
     * trusts the sizes of the first, so the input must be immutable. */
    if (!PyArg_ParseTuple(args, "SSO:encode_run", &run_obj, &head_obj, &seq_obj)) return NULL;
    if (PyBytes_AsStringAndSize(run_obj, &run, &run_len) < 0) return NULL;
    if (PyBytes_AsStringAndSize(head_obj, &head, &head_len) < 0) return NULL;
    long long seq = PyLong_AsLongLongAndOverflow(seq_obj, &overflow);
    if (seq == -1 && PyErr_Occurred()) return NULL;
    /* A seq out of range (only a damaged file could give one) is the slow path's. */
    if (overflow || seq < 0 || seq >= SEQ_LIMIT) Py_RETURN_NONE;
    const unsigned char *start = (const unsigned char *)run, *end = start + run_len;
    /* Every line ends with '\n': the scans rely on it to stop without a bounds check. */
    if (run_len == 0 || end[-1] != '\n') Py_RETURN_NONE;
    /* The exact size computed below is at most 6 bytes per input byte (\u00xx) plus a
     * record frame per line of at least 32 bytes: refuse a run where that could overflow. */
    Py_ssize_t frame = (Py_ssize_t)(RECORD_FIXED + SEQ_DIGITS_MAX) + head_len;
    if (run_len > PY_SSIZE_T_MAX / 12 || frame > PY_SSIZE_T_MAX / 2 / (run_len / (TS_WIDTH + 2) + 1))
        return PyErr_NoMemory();

    Py_BEGIN_ALLOW_THREADS
    size = measure(start, end, head_len, seq, &lines);
    Py_END_ALLOW_THREADS
    if (size < 0) Py_RETURN_NONE;

    PyObject *out = PyBytes_FromStringAndSize(NULL, size);
    if (out == NULL) return NULL;
    char *o = PyBytes_AsString(out);
    if (o == NULL) {
        Py_DECREF(out);
        return NULL;
    }
    char *room = PyMem_Malloc(PREFIX_ROOM(head_len));
    if (room == NULL) {
        Py_DECREF(out);
        return PyErr_NoMemory();
    }
    Py_BEGIN_ALLOW_THREADS
    write_records(start, end, head, head_len, seq, o, o + size, room);
    Py_END_ALLOW_THREADS
    PyMem_Free(room);
    return Py_BuildValue("(Nn)", out, lines);
}

static PyMethodDef methods[] = {
    {"encode_run", encode_run, METH_VARARGS,
     "encode_run(run, head, seq) -> (records, lines) or None: see workers/stream/_encode.c"},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {{0, NULL}};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, .m_name = "workers.stream._encode",
    .m_doc = "Native fast path of workers.stream.records (optional; see records.NATIVE).",
    .m_size = 0, .m_methods = methods, .m_slots = slots,
};

PyMODINIT_FUNC PyInit__encode(void) { return PyModuleDef_Init(&module); }
