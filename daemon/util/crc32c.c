/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * CRC-32C (Castagnoli, reflected polynomial 0x82f63b78), table driven, eight bytes per step
 * ("slicing-by-8"): replay checksums every byte of the journal, so this is on the startup path.
 *
 * Owns the lookup tables, built once on first use. Byte order of the host does not matter: words
 * are assembled from bytes explicitly (the compiler folds that into one load where it can).
 */

#include <pthread.h>

#include "crc32c.h"

#define CRC32C_POLY 0x82f63b78u

static uint32_t crc32c_table[8][256];
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;

static void crc32c_init(void) {
        for (unsigned n = 0; n < 256; n++) {
                uint32_t c = n;

                for (unsigned k = 0; k < 8; k++)
                        c = (c >> 1) ^ (CRC32C_POLY & -(c & 1u));
                crc32c_table[0][n] = c;
        }

        /* table[k][n]: the CRC of byte n followed by k zero bytes, so 8 lookups advance 8 bytes */
        for (unsigned n = 0; n < 256; n++)
                for (unsigned k = 1; k < 8; k++) {
                        uint32_t c = crc32c_table[k - 1][n];

                        crc32c_table[k][n] = (c >> 8) ^ crc32c_table[0][c & 0xffu];
                }
}

static uint32_t load_le32(const uint8_t *p) {
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

uint32_t crc32c(uint32_t crc, const void *buf, size_t size) {
        const uint8_t *p = buf;

        (void) pthread_once(&crc32c_once, crc32c_init);

        /* Pre- and post-inversion, so chaining is just passing the previous result back in. */
        crc = ~crc;

        for (; size >= 8; size -= 8, p += 8) {
                uint32_t lo = load_le32(p) ^ crc, hi = load_le32(p + 4);

                crc = crc32c_table[7][lo & 0xffu] ^
                      crc32c_table[6][(lo >> 8) & 0xffu] ^
                      crc32c_table[5][(lo >> 16) & 0xffu] ^
                      crc32c_table[4][lo >> 24] ^
                      crc32c_table[3][hi & 0xffu] ^
                      crc32c_table[2][(hi >> 8) & 0xffu] ^
                      crc32c_table[1][(hi >> 16) & 0xffu] ^
                      crc32c_table[0][hi >> 24];
        }

        for (; size > 0; size--, p++)
                crc = (crc >> 8) ^ crc32c_table[0][(crc ^ *p) & 0xffu];

        return ~crc;
}
