/*
 * Batch HMAC-SHA256 references for supporting_families.share.pseudonymise, on OpenSSL's libcrypto.
 *
 * Why C: a reference is HMAC-SHA256(key, "<kind>:<id>") truncated to 128 bits, and a million of them
 * through Python's hmac module cost a million interpreter round trips. Here the loop runs without the
 * interpreter and without the GIL, on several threads for a large batch.
 *
 * No hash is written here: the MAC is OpenSSL's EVP_MAC "HMAC" with "SHA256" (libcrypto, which uses the
 * CPU's SHA extensions where it has them). The key is set once per thread; OpenSSL keeps the states after
 * the inner and outer pad blocks, and re-initialising with a NULL key starts every reference from those
 * precomputed states, so each reference costs two compressions. The tests compare every path with
 * Python's own hmac module on random keys and inputs, and check that this module links libcrypto.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#define MAX_THREADS 16

static const char HEX[] = "0123456789abcdef";

typedef struct {
    EVP_MAC_CTX *ctx;        /* keyed once; each reference re-initialises it from the kept pad states */
    const unsigned char *prefix;
    size_t prefix_len;
    const unsigned char *data;
    const int32_t *off;
    Py_ssize_t start, stop;  /* the rows this thread does */
    char *out;               /* n * width bytes: out_prefix then hex_digits per row */
    const char *out_prefix;
    size_t out_prefix_len;
    int hex_digits;
    int failed;
} Work;

static void *run(void *arg) {
    Work *w = (Work *)arg;
    size_t width = w->out_prefix_len + (size_t)w->hex_digits;
    unsigned char digest[EVP_MAX_MD_SIZE];
    for (Py_ssize_t i = w->start; i < w->stop; i++) {
        size_t got = 0;
        if (!EVP_MAC_init(w->ctx, NULL, 0, NULL) || !EVP_MAC_update(w->ctx, w->prefix, w->prefix_len) ||
            !EVP_MAC_update(w->ctx, w->data + w->off[i], (size_t)(w->off[i + 1] - w->off[i])) ||
            !EVP_MAC_final(w->ctx, digest, &got, sizeof digest) || got * 2 < (size_t)w->hex_digits) {
            w->failed = 1;
            return NULL;
        }
        char *o = w->out + (size_t)i * width;
        memcpy(o, w->out_prefix, w->out_prefix_len);
        o += w->out_prefix_len;
        for (int j = 0; j < w->hex_digits; j++) {
            unsigned char byte = digest[j / 2];
            o[j] = HEX[(j % 2 == 0) ? (byte >> 4) : (byte & 0x0f)];
        }
    }
    return NULL;
}

static EVP_MAC_CTX *keyed(EVP_MAC *mac, const Py_buffer *key) {
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
    if (ctx == NULL) return NULL;
    char digest_name[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
                           OSSL_PARAM_construct_end()};
    if (!EVP_MAC_init(ctx, (const unsigned char *)key->buf, (size_t)key->len, params)) {
        EVP_MAC_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/*
 * references(key: bytes, prefix: bytes, data: bytes, offsets: bytes(int32 little-endian, n+1),
 *            hex_digits: int, out_prefix: bytes, threads: int) -> bytes
 * `data`/`offsets` are an Arrow string column's buffers. Returns n fixed-width entries, each
 * out_prefix followed by the first hex_digits hex digits of HMAC-SHA256(key, prefix || id).
 */
static PyObject *references(PyObject *self, PyObject *args) {
    Py_buffer key, prefix, data, offsets, out_prefix;
    int hex_digits, threads;
    if (!PyArg_ParseTuple(args, "y*y*y*y*iy*i", &key, &prefix, &data, &offsets, &hex_digits, &out_prefix,
                          &threads))
        return NULL;
    PyObject *result = NULL;
    EVP_MAC *mac = NULL;
    Work work[MAX_THREADS];
    int made = 0;
    if (key.len < 1 || hex_digits < 1 || hex_digits > 64 || offsets.len % 4 != 0 || offsets.len < 4 ||
        out_prefix.len > 64) {
        PyErr_SetString(PyExc_ValueError, "empty key, bad digit count, bad offsets or a long output prefix");
        goto done;
    }
    Py_ssize_t n = offsets.len / 4 - 1;
    const int32_t *off = (const int32_t *)offsets.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (off[i] < 0 || off[i + 1] < off[i] || off[i + 1] > data.len) {
            PyErr_SetString(PyExc_ValueError, "offsets outside the data buffer");
            goto done;
        }
    }
    if (threads < 1) threads = 1;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (n < threads) threads = n > 0 ? (int)n : 1;
    size_t width = (size_t)out_prefix.len + (size_t)hex_digits;
    result = PyBytes_FromStringAndSize(NULL, n * (Py_ssize_t)width);
    if (result == NULL) goto done;
    mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (mac == NULL) goto crypto_error;
    for (; made < threads; made++) {
        Work *w = &work[made];
        w->ctx = keyed(mac, &key);
        if (w->ctx == NULL) goto crypto_error;
        w->prefix = (const unsigned char *)prefix.buf;
        w->prefix_len = (size_t)prefix.len;
        w->data = (const unsigned char *)data.buf;
        w->off = off;
        w->start = n * made / threads;
        w->stop = n * (made + 1) / threads;
        w->out = PyBytes_AS_STRING(result);
        w->out_prefix = (const char *)out_prefix.buf;
        w->out_prefix_len = (size_t)out_prefix.len;
        w->hex_digits = hex_digits;
        w->failed = 0;
    }
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    pthread_t tids[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    /* This thread does the first share itself; the others get their own thread each. */
    for (int t = 1; t < threads; t++) started[t] = pthread_create(&tids[t], NULL, run, &work[t]) == 0;
    run(&work[0]);
    for (int t = 1; t < threads; t++) {
        if (started[t])
            pthread_join(tids[t], NULL);
        else
            run(&work[t]);  /* no thread to be had: do its share here */
    }
    for (int t = 0; t < threads; t++) failed |= work[t].failed;
    Py_END_ALLOW_THREADS
    if (failed) goto crypto_error;
    goto done;
crypto_error:
    Py_CLEAR(result);
    PyErr_SetString(PyExc_RuntimeError, "OpenSSL's HMAC-SHA256 failed");
done:
    for (int t = 0; t < made; t++) EVP_MAC_CTX_free(work[t].ctx);
    EVP_MAC_free(mac);
    PyBuffer_Release(&key);
    PyBuffer_Release(&prefix);
    PyBuffer_Release(&data);
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&out_prefix);
    return result;
}

static PyMethodDef METHODS[] = {
    {"references", references, METH_VARARGS, "Batch HMAC-SHA256 references as hex (see _hmac.c)."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef MODULE = {PyModuleDef_HEAD_INIT, "_hmac", NULL, -1, METHODS};

PyMODINIT_FUNC PyInit__hmac(void) { return PyModule_Create(&MODULE); }
