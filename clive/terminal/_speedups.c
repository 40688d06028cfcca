/* The checks a flood's text goes through before FastStream takes it, in one pass over it.
 *
 * clive/fastfeed.py has the same checks in Python (_check_slice, _line_stats), and uses them where
 * this module was not built. They remove an SGR with one regex match each, about 85-130 ns: in a
 * coloured log (60,000 SGRs a megabyte) that was most of the reader's time. Here a megabyte takes
 * about a millisecond (1.1 ms coloured, 0.7 plain), its lines cut out included. check_text does the
 * same for text that is not ASCII, making its cells as it goes (a STUB after each two-cell character,
 * a token for each grapheme cluster), which took a flood of CJK lines from 28 to 185 MB/s fed to the
 * screen directly. tests/test_fastfeed.py holds both to the Python checks' answers.
 *
 * And wait_queued, the terminal reader's wait for a flood's next bytes (see _more_soon in
 * clive/terminal.py): a loop that must not hold the GIL, so C.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Where an SGR (ESC [ digits-and-semicolons m) that starts at s[i] ends, or -1 if none does. */
#define SGR_END(TYPE, s, n, i, out)                                         \
    do {                                                                    \
        Py_ssize_t j_ = (i) + 1;                                            \
        (out) = -1;                                                         \
        if (j_ < (n) && (s)[j_] == '[') {                                   \
            j_++;                                                           \
            while (j_ < (n) && (((s)[j_] >= '0' && (s)[j_] <= '9') || (s)[j_] == ';')) \
                j_++;                                                       \
            if (j_ < (n) && (s)[j_] == 'm')                                 \
                (out) = j_ + 1;                                             \
        }                                                                   \
    } while (0)

/* Copies s[0:n] without its SGRs into out; returns the characters written, or -1 at an ESC that
 * starts no SGR. */
#define STRIP_BODY(TYPE)                                                    \
    {                                                                       \
        const TYPE *s = (const TYPE *)src;                                  \
        TYPE *o = (TYPE *)dst;                                              \
        Py_ssize_t w = 0, i = 0, end;                                       \
        while (i < n) {                                                     \
            Py_ssize_t run = i;                                             \
            while (run < n && s[run] != 0x1b)                               \
                run++;                                                      \
            memcpy(o + w, s + i, (size_t)(run - i) * sizeof(TYPE));         \
            w += run - i;                                                   \
            if (run == n)                                                   \
                break;                                                      \
            SGR_END(TYPE, s, n, run, end);                                  \
            if (end < 0)                                                    \
                return -1;                                                  \
            i = end;                                                        \
        }                                                                   \
        return w;                                                           \
    }

static Py_ssize_t strip_ucs1(const void *src, Py_ssize_t n, void *dst) STRIP_BODY(Py_UCS1)
static Py_ssize_t strip_ucs2(const void *src, Py_ssize_t n, void *dst) STRIP_BODY(Py_UCS2)
static Py_ssize_t strip_ucs4(const void *src, Py_ssize_t n, void *dst) STRIP_BODY(Py_UCS4)

PyDoc_STRVAR(strip_sgr_doc,
"strip_sgr(text, /)\n--\n\n"
"``text`` without its SGRs (ESC [ digits and semicolons m); None if an ESC in it starts no SGR.");

static PyObject *
strip_sgr(PyObject *module, PyObject *text)
{
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "strip_sgr() takes a str");
        return NULL;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    if (PyUnicode_FindChar(text, 0x1b, 0, n, 1) == -1)
        return Py_NewRef(text);
    void *buf = PyMem_Malloc((size_t)(n ? n : 1) * (size_t)kind);
    if (buf == NULL)
        return PyErr_NoMemory();
    Py_ssize_t w;
    if (kind == PyUnicode_1BYTE_KIND)
        w = strip_ucs1(data, n, buf);
    else if (kind == PyUnicode_2BYTE_KIND)
        w = strip_ucs2(data, n, buf);
    else
        w = strip_ucs4(data, n, buf);
    PyObject *result;
    if (w < 0)
        result = Py_NewRef(Py_None);
    else
        result = PyUnicode_FromKindAndData(kind, buf, w);
    PyMem_Free(buf);
    return result;
}

/* How many characters from s[i] on are printable ASCII (space to ~). */
static inline Py_ssize_t
printable_run(const Py_UCS1 *s, Py_ssize_t i, Py_ssize_t n)
{
    Py_ssize_t j = i;
#if defined(__SSE2__)
    /* 16 at a time: a signed compare also stops at bytes >= 0x80, which ASCII text has none of. */
    const __m128i space = _mm_set1_epi8(0x20), del = _mm_set1_epi8(0x7f);
    while (j + 16 <= n) {
        __m128i v = _mm_loadu_si128((const __m128i *)(s + j));
        int stops = _mm_movemask_epi8(_mm_or_si128(_mm_cmplt_epi8(v, space), _mm_cmpeq_epi8(v, del)));
        if (stops)
            return j + __builtin_ctz((unsigned)stops) - i;
        j += 16;
    }
#endif
    while (j < n && s[j] >= 0x20 && s[j] != 0x7f)
        j++;
    return j - i;
}

/* ASCII s[0:n] split at CR LF, as str.split("\r\n") splits it: one pass less over the text, and no
 * search for the two characters. */
static PyObject *
split_lines(const Py_UCS1 *s, Py_ssize_t n)
{
    PyObject *lines = PyList_New(0);
    if (lines == NULL)
        return NULL;
    Py_ssize_t start = 0, i = 0;
    for (;;) {
        const Py_UCS1 *lf = i < n ? memchr(s + i, '\n', (size_t)(n - i)) : NULL;
        Py_ssize_t end = n;
        if (lf != NULL) {
            Py_ssize_t j = lf - s;
            i = j + 1;
            if (j == 0 || s[j - 1] != '\r')
                continue;
            end = j - 1;
        }
        PyObject *line = PyUnicode_New(end - start, 127);
        if (line == NULL || PyList_Append(lines, line) < 0) {
            Py_XDECREF(line);
            Py_DECREF(lines);
            return NULL;
        }
        memcpy(PyUnicode_1BYTE_DATA(line), s + start, (size_t)(end - start));
        Py_DECREF(line);
        if (lf == NULL)
            return lines;
        start = i;
    }
}

/* A line of ``len`` cells written from column 0: the rows it takes beyond one at ``columns``, and
 * whether it is the longest so far. */
static inline void
count_line(Py_ssize_t len, Py_ssize_t columns, Py_ssize_t *wraps, Py_ssize_t *longest)
{
    if (len > *longest)
        *longest = len;
    if (len > columns)
        *wraps += (len - 1) / columns;
}

/* The columns argument of the checks: >= 1; -1 with an exception set otherwise. */
static Py_ssize_t
columns_arg(PyObject *arg, const char *function)
{
    Py_ssize_t columns = PyLong_AsSsize_t(arg);
    if (columns == -1 && PyErr_Occurred())
        return -1;
    if (columns < 1) {
        PyErr_Format(PyExc_ValueError, "%s() needs columns >= 1", function);
        return -1;
    }
    return columns;
}

PyDoc_STRVAR(check_ascii_doc,
"check_ascii(text, columns, /)\n--\n\n"
"For ASCII ``text``: None unless it is all printable text, TAB, CR, LF, BS and SGRs (what\n"
"FastStream's fast paths take); else (plain, controls, lines, wraps, longest): the text without its\n"
"SGRs, its CR, LF and BS in order, that text split at CR LF (as ``plain.split('\\r\\n')``), and of\n"
"those lines the rows they take beyond one each when wrapped at ``columns`` and the longest one's\n"
"length.");

static PyObject *
check_ascii(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyUnicode_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "check_ascii() takes a str and the columns");
        return NULL;
    }
    PyObject *text = args[0];
    Py_ssize_t columns = columns_arg(args[1], "check_ascii");
    if (columns < 0)
        return NULL;
    if (!PyUnicode_IS_ASCII(text)) {
        PyErr_SetString(PyExc_ValueError, "check_ascii() takes ASCII text");
        return NULL;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    const Py_UCS1 *s = PyUnicode_1BYTE_DATA(text);
    Py_UCS1 *out = PyMem_Malloc((size_t)(n ? n : 1));
    Py_UCS1 *ctl = PyMem_Malloc((size_t)(n ? n : 1));
    if (out == NULL || ctl == NULL) {
        PyMem_Free(out);
        PyMem_Free(ctl);
        return PyErr_NoMemory();
    }
    Py_ssize_t w = 0, c = 0, line_start = 0, wraps = 0, longest = 0, i = 0, end;
    int fast = 1;
    while (i < n) {
        Py_ssize_t run = printable_run(s, i, n);
        memcpy(out + w, s + i, (size_t)run);
        w += run;
        i += run;
        if (i == n)
            break;
        Py_UCS1 ch = s[i];
        if (ch == 0x1b) {
            SGR_END(Py_UCS1, s, n, i, end);
            if (end < 0) {
                fast = 0;
                break;
            }
            i = end;
            continue;
        }
        if (ch == '\t') {
            out[w++] = ch;
        }
        else if (ch == '\r' || ch == '\b') {
            out[w++] = ch;
            ctl[c++] = ch;
        }
        else if (ch == '\n') {
            /* CR LF ends a line, whatever SGRs stood between them; a CR LF ends with its LF, so a CR
             * just before this LF is never part of the pair before. */
            if (w > line_start && out[w - 1] == '\r') {
                count_line(w - 1 - line_start, columns, &wraps, &longest);
                line_start = w + 1;
            }
            out[w++] = ch;
            ctl[c++] = ch;
        }
        else {
            fast = 0;
            break;
        }
        i++;
    }
    PyObject *result = NULL;
    if (!fast) {
        result = Py_NewRef(Py_None);
    }
    else {
        count_line(w - line_start, columns, &wraps, &longest);  /* the last line, after the last CR LF */
        PyObject *plain = w == n ? Py_NewRef(text) : PyUnicode_FromKindAndData(PyUnicode_1BYTE_KIND, out, w);
        PyObject *controls = PyBytes_FromStringAndSize((const char *)ctl, c);
        PyObject *lines = split_lines(out, w);
        if (plain != NULL && controls != NULL && lines != NULL)
            result = Py_BuildValue("(OOOnn)", plain, controls, lines, wraps, longest);
        Py_XDECREF(plain);
        Py_XDECREF(controls);
        Py_XDECREF(lines);
    }
    PyMem_Free(out);
    PyMem_Free(ctl);
    return result;
}

/* check_text: what the fast paths make of text that is not ASCII (see clive/terminal/fastcheck.py:
 * cells, cluster_cells, line_stats), in one pass. A two-cell character is followed by STUB; a cluster
 * (a character with the zero-width characters joined to it, the character after each joiner, or a
 * pair of regional indicators) becomes the token ``tokens`` holds for it. */

#define STUB 0
#define ZWJ 0x200D
#define JOINS 3
#define IS_REGIONAL(c) ((c) >= 0x1F1E6 && (c) <= 0x1F1FF)

/* Rows beyond the first of out[0:len] written from column 0, a STUB at a row's start dropped. */
static Py_ssize_t
stub_wraps(const Py_UCS4 *out, Py_ssize_t len, Py_ssize_t columns)
{
    Py_ssize_t rows = 0, x = 0;
    for (Py_ssize_t i = 0; i < len; i++) {
        if (x == columns) {
            if (out[i] == STUB)
                continue;
            rows++;
            x = 0;
        }
        x++;
    }
    return rows;
}

typedef struct {
    Py_UCS4 *out;
    Py_ssize_t w, line_start, wraps, longest, columns;
    int line_stubs, line_lf, any_stub;
} Cells;

/* The line out[line_start:end] is whole: count its rows. 0, or -1 where the Python checks must answer
 * (a line with a STUB and an LF of its own: rows_pattern's rows there are its business). */
static int
end_line(Cells *c, Py_ssize_t end)
{
    Py_ssize_t len = end - c->line_start;
    if (len > c->longest)
        c->longest = len;
    if (len > c->columns) {
        if (c->line_stubs) {
            if (c->line_lf)
                return -1;
            c->wraps += stub_wraps(c->out + c->line_start, len, c->columns);
        }
        else {
            c->wraps += (len - 1) / c->columns;
        }
    }
    c->line_stubs = c->line_lf = 0;
    return 0;
}

/* 1: fast, 0: not (None), -1: the Python checks answer (NotImplemented). */
#define CHECK_BODY(TYPE)                                                                          \
    {                                                                                             \
        const TYPE *s = (const TYPE *)src;                                                        \
        Py_UCS4 *out = c->out;                                                                    \
        Py_ssize_t i = 0, end;                                                                    \
        Py_ssize_t base_in = -1, base_out = 0, joined_end = 0; /* the cell being made */          \
        int joined = 0, lone_regional = 0, after_joiner = 0, after_sgr = 0, last_regional = 0;    \
        while (i < n) {                                                                           \
            Py_UCS4 ch = s[i];                                                                    \
            if (ch == 0x1b) {                                                                     \
                SGR_END(TYPE, s, n, i, end);                                                      \
                if (end < 0 || after_joiner)                                                      \
                    return 0;                                                                     \
                after_sgr = 1;                                                                    \
                i = end;                                                                          \
                continue;                                                                         \
            }                                                                                     \
            int cls;                                                                              \
            if (ch == '\r' || ch == '\n' || ch == '\t' || ch == '\b')                             \
                cls = -1;                                                                         \
            else if (ch < (Py_UCS4)nwidths)                                                       \
                cls = widths[ch];                                                                 \
            else                                                                                  \
                return nwidths <= 0x10000 ? -1 : 0; /* beyond the BMP: the whole table, please */ \
            if (cls == 0)                                                                         \
                return 0;                                                                         \
            if (after_sgr && last_regional && IS_REGIONAL(ch))                                    \
                return 0; /* as the Python checks: an SGR between two regional indicators */     \
            int joins = after_joiner || (cls == JOINS)                                            \
                || (IS_REGIONAL(ch) && lone_regional);                                            \
            if (joins) {                                                                          \
                if (cls < 0 || base_in < 0 || after_sgr)                                          \
                    return 0; /* nothing to join here, or an SGR inside the cluster */           \
                joined = 1;                                                                       \
                joined_end = i + 1;                                                               \
                lone_regional = 0;                                                                \
                last_regional = IS_REGIONAL(ch);                                                  \
                after_joiner = ch == ZWJ;                                                         \
                after_sgr = 0;                                                                    \
                i++;                                                                              \
                continue;                                                                         \
            }                                                                                     \
            if (joined && token_of(tokens, src, kind, base_in, joined_end, out + base_out) < 0)   \
                return -1;                                                                        \
            joined = 0;                                                                           \
            after_sgr = 0;                                                                        \
            if (cls < 0) {                                                                        \
                base_in = -1;                                                                     \
                lone_regional = last_regional = 0;                                                \
                if (ch == '\n') {                                                                 \
                    if (c->w > c->line_start && out[c->w - 1] == '\r') {                          \
                        if (end_line(c, c->w - 1) < 0)                                            \
                            return -1;                                                            \
                        c->line_start = c->w + 1;                                                 \
                    }                                                                             \
                    else {                                                                        \
                        c->line_lf = 1;                                                           \
                    }                                                                             \
                }                                                                                 \
                out[c->w++] = ch;                                                                 \
                i++;                                                                              \
                continue;                                                                         \
            }                                                                                     \
            if (IS_REGIONAL(ch) && c->w == 0)                                                     \
                return 0; /* it may pair with one the screen has: pyte's path decides */          \
            base_in = i;                                                                          \
            base_out = c->w;                                                                      \
            lone_regional = last_regional = IS_REGIONAL(ch);                                      \
            out[c->w++] = ch;                                                                     \
            if (cls == 2) {                                                                       \
                out[c->w++] = STUB;                                                               \
                c->line_stubs = c->any_stub = 1;                                                  \
            }                                                                                     \
            i++;                                                                                  \
        }                                                                                         \
        if (after_joiner)                                                                         \
            return 0;                                                                             \
        if (joined && token_of(tokens, src, kind, base_in, joined_end, out + base_out) < 0)       \
            return -1;                                                                            \
        return end_line(c, c->w) < 0 ? -1 : 1;                                                    \
    }

/* Writes the token of the cluster src[start:end] (of that kind) at *at; -1 when it has none yet. */
static int
token_of(PyObject *tokens, const void *src, int kind, Py_ssize_t start, Py_ssize_t end, Py_UCS4 *at)
{
    PyObject *cluster = PyUnicode_FromKindAndData(kind, (const char *)src + start * kind, end - start);
    if (cluster == NULL) {
        PyErr_Clear();
        return -1;
    }
    PyObject *token = PyDict_GetItemWithError(tokens, cluster);
    Py_DECREF(cluster);
    if (token == NULL) {
        PyErr_Clear();
        return -1;
    }
    *at = PyUnicode_READ_CHAR(token, 0);
    return 0;
}

#define CHECK_ARGS                                                                                \
    (const void *src, int kind, Py_ssize_t n, Cells *c, const unsigned char *widths,              \
     Py_ssize_t nwidths, PyObject *tokens)
static int check_ucs1 CHECK_ARGS CHECK_BODY(Py_UCS1)
static int check_ucs2 CHECK_ARGS CHECK_BODY(Py_UCS2)
static int check_ucs4 CHECK_ARGS CHECK_BODY(Py_UCS4)

PyDoc_STRVAR(check_text_doc,
"check_text(text, columns, widths, tokens, /)\n--\n\n"
"check_ascii's answer for text that is not ASCII, (plain, None, lines, wraps, longest), where plain\n"
"is the text's cells (fastcheck.cells): each two-cell character followed by STUB, each cluster the\n"
"token ``tokens`` maps it to. ``widths``: fastcheck's width table (of the BMP or of every plane).\n"
"None where the fast paths do not take the text; NotImplemented where fastfeed's Python checks must\n"
"answer: a character beyond the table, a cluster without a token yet, a line with a two-cell\n"
"character and an LF of its own.");

static PyObject *
check_text(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyUnicode_Check(args[0]) || !PyBytes_Check(args[2]) || !PyDict_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "check_text() takes a str, the columns, the widths (bytes) and the tokens (dict)");
        return NULL;
    }
    PyObject *text = args[0];
    Py_ssize_t columns = columns_arg(args[1], "check_text");
    if (columns < 0)
        return NULL;
    int kind = PyUnicode_KIND(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    const unsigned char *widths = (const unsigned char *)PyBytes_AS_STRING(args[2]);
    Py_ssize_t nwidths = PyBytes_GET_SIZE(args[2]);
    Cells c = {0};
    c.columns = columns;
    c.out = PyMem_Malloc((size_t)(2 * n + 1) * sizeof(Py_UCS4)); /* a STUB after each, at most */
    if (c.out == NULL)
        return PyErr_NoMemory();
    const void *data = PyUnicode_DATA(text);
    int fast = kind == PyUnicode_1BYTE_KIND ? check_ucs1(data, kind, n, &c, widths, nwidths, args[3])
        : kind == PyUnicode_2BYTE_KIND      ? check_ucs2(data, kind, n, &c, widths, nwidths, args[3])
                                            : check_ucs4(data, kind, n, &c, widths, nwidths, args[3]);
    PyObject *result = NULL;
    if (fast < 0) {
        result = Py_NewRef(Py_NotImplemented);
    }
    else if (fast == 0) {
        result = Py_NewRef(Py_None);
    }
    else {
        PyObject *plain = c.w == n && !c.any_stub ? Py_NewRef(text)
                                                  : PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, c.out, c.w);
        PyObject *sep = plain != NULL ? PyUnicode_FromString("\r\n") : NULL;
        PyObject *lines = sep != NULL ? PyUnicode_Split(plain, sep, -1) : NULL;
        if (lines != NULL)
            result = Py_BuildValue("(OOOnn)", plain, Py_None, lines, c.wraps, c.longest);
        Py_XDECREF(plain);
        Py_XDECREF(sep);
        Py_XDECREF(lines);
    }
    PyMem_Free(c.out);
    return result;
}

PyDoc_STRVAR(wait_queued_doc,
"wait_queued(fd, microseconds, /)\n--\n\n"
"The bytes terminal ``fd`` holds to read, asked (FIONREAD) again and again for up to ``microseconds``\n"
"with the GIL released; 0 if none came in that time.");

static PyObject *
wait_queued(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "wait_queued() takes a file descriptor and microseconds");
        return NULL;
    }
    long fd = PyLong_AsLong(args[0]);
    if (fd == -1 && PyErr_Occurred())
        return NULL;
    if (fd < 0 || fd > INT_MAX) {
        PyErr_Format(PyExc_ValueError, "wait_queued() needs a file descriptor, not %ld", fd);
        return NULL;
    }
    long long micro = PyLong_AsLongLong(args[1]);
    if (micro == -1 && PyErr_Occurred())
        return NULL;
    int queued = 0, failed = 0;
    Py_BEGIN_ALLOW_THREADS
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        if (ioctl((int)fd, FIONREAD, &queued) < 0) {
            failed = errno;
            break;
        }
        if (queued > 0)
            break;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - start.tv_sec) * 1000000LL + (now.tv_nsec - start.tv_nsec) / 1000 >= micro)
            break;
    }
    Py_END_ALLOW_THREADS
    if (failed) {
        errno = failed;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromLong(queued);
}

static PyMethodDef methods[] = {
    {"strip_sgr", (PyCFunction)strip_sgr, METH_O, strip_sgr_doc},
    {"check_ascii", (PyCFunction)(void (*)(void))check_ascii, METH_FASTCALL, check_ascii_doc},
    {"check_text", (PyCFunction)(void (*)(void))check_text, METH_FASTCALL, check_text_doc},
    {"wait_queued", (PyCFunction)(void (*)(void))wait_queued, METH_FASTCALL, wait_queued_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "clive.terminal._speedups",
    .m_doc = "C versions of fastfeed's checks of a flood's text (see clive/fastfeed.py), and the terminal "
              "reader's wait for a flood's next bytes (see clive/terminal.py).",
    .m_size = 0,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&module);
}
