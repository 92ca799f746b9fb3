/*
 * Batch HMAC-SHA256 references for supporting_families.share.pseudonymise.
 *
 * Why C: a reference is HMAC-SHA256(key, "<kind>:<id>") truncated to 128 bits. Written out in SQL, each
 * reference costs four SHA-256 compressions (both 64-byte pads are hashed again for every row). Here the
 * states after the inner and outer pad blocks are computed once per key, so each reference costs two
 * compressions, in a loop without the interpreter: several million references a second on one core.
 *
 * SHA-256 follows FIPS 180-4; HMAC follows RFC 2104. The Python side checks every result against
 * Python's own hmac module in the tests. Only ids up to 55 bytes after the prefix fit the single inner
 * block this fast path handles; longer ones are refused and Python falls back.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static const uint32_t H0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                               0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void compress(uint32_t state[8], const unsigned char block[64]) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++) {
        w[i] = ((uint32_t)block[4 * i] << 24) | ((uint32_t)block[4 * i + 1] << 16) |
               ((uint32_t)block[4 * i + 2] << 8) | (uint32_t)block[4 * i + 3];
    }
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROTR(w[i - 15], 7) ^ ROTR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROTR(w[i - 2], 17) ^ ROTR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = h + (ROTR(e, 6) ^ ROTR(e, 11) ^ ROTR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
        uint32_t t2 = (ROTR(a, 2) ^ ROTR(a, 13) ^ ROTR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    state[0] += a; state[1] += b; state[2] += c; state[3] += d;
    state[4] += e; state[5] += f; state[6] += g; state[7] += h;
}

/* One final block holding `len` message bytes that follow `done` bytes already compressed. */
static void final_block(uint32_t state[8], const unsigned char *msg, size_t len, uint64_t done) {
    unsigned char block[64];
    memset(block, 0, 64);
    memcpy(block, msg, len);
    block[len] = 0x80;
    uint64_t bits = (done + len) * 8;
    for (int i = 0; i < 8; i++) block[63 - i] = (unsigned char)(bits >> (8 * i));
    compress(state, block);
}

static const char HEX[] = "0123456789abcdef";

/*
 * references(key: bytes, prefix: bytes, data: bytes, offsets: bytes(int32 little-endian, n+1),
 *            hex_digits: int) -> bytes
 * `data`/`offsets` are an Arrow string column's buffers. Returns n * hex_digits ASCII bytes.
 */
static PyObject *references(PyObject *self, PyObject *args) {
    Py_buffer key, prefix, data, offsets;
    int hex_digits;
    if (!PyArg_ParseTuple(args, "y*y*y*y*i", &key, &prefix, &data, &offsets, &hex_digits)) return NULL;
    PyObject *result = NULL;
    if (key.len > 64 || hex_digits < 1 || hex_digits > 64 || offsets.len % 4 != 0 || offsets.len < 4) {
        PyErr_SetString(PyExc_ValueError, "key over 64 bytes, bad digit count or bad offsets");
        goto done;
    }
    Py_ssize_t n = offsets.len / 4 - 1;
    const int32_t *off = (const int32_t *)offsets.buf;
    const unsigned char *bytes = (const unsigned char *)data.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (off[i] < 0 || off[i + 1] < off[i] || off[i + 1] > data.len ||
            prefix.len + (off[i + 1] - off[i]) > 55) {
            PyErr_SetString(PyExc_ValueError, "an id is too long for the single-block fast path");
            goto done;
        }
    }
    unsigned char pad[64];
    uint32_t inner0[8], outer0[8];
    memset(pad, 0, 64);
    memcpy(pad, key.buf, key.len);
    for (int i = 0; i < 64; i++) pad[i] ^= 0x36;
    memcpy(inner0, H0, sizeof H0);
    compress(inner0, pad);
    for (int i = 0; i < 64; i++) pad[i] ^= 0x36 ^ 0x5c;
    memcpy(outer0, H0, sizeof H0);
    compress(outer0, pad);

    result = PyBytes_FromStringAndSize(NULL, n * hex_digits);
    if (result == NULL) goto done;
    char *out = PyBytes_AS_STRING(result);
    const unsigned char *pre = (const unsigned char *)prefix.buf;
    Py_BEGIN_ALLOW_THREADS
    unsigned char msg[64], digest[32];
    memcpy(msg, pre, prefix.len);
    for (Py_ssize_t i = 0; i < n; i++) {
        size_t len = (size_t)(off[i + 1] - off[i]);
        memcpy(msg + prefix.len, bytes + off[i], len);
        uint32_t st[8];
        memcpy(st, inner0, sizeof st);
        final_block(st, msg, prefix.len + len, 64);
        for (int j = 0; j < 8; j++) {
            digest[4 * j] = (unsigned char)(st[j] >> 24); digest[4 * j + 1] = (unsigned char)(st[j] >> 16);
            digest[4 * j + 2] = (unsigned char)(st[j] >> 8); digest[4 * j + 3] = (unsigned char)st[j];
        }
        memcpy(st, outer0, sizeof st);
        final_block(st, digest, 32, 64);
        char *o = out + i * hex_digits;
        for (int j = 0; j < hex_digits; j++) {
            unsigned char byte = (unsigned char)(st[j / 8] >> (24 - 8 * ((j / 2) % 4)));
            o[j] = HEX[(j % 2 == 0) ? (byte >> 4) : (byte & 0x0f)];
        }
    }
    Py_END_ALLOW_THREADS
done:
    PyBuffer_Release(&key);
    PyBuffer_Release(&prefix);
    PyBuffer_Release(&data);
    PyBuffer_Release(&offsets);
    return result;
}

static PyMethodDef METHODS[] = {
    {"references", references, METH_VARARGS, "Batch HMAC-SHA256 references as hex (see _hmac.c)."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef MODULE = {PyModuleDef_HEAD_INIT, "_hmac", NULL, -1, METHODS};

PyMODINIT_FUNC PyInit__hmac(void) { return PyModule_Create(&MODULE); }
