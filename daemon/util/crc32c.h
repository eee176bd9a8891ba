/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* CRC-32C (Castagnoli), as iSCSI/ext4; crc32c(0, "123456789", 9) == 0xe3069283. Chain by
 * passing the previous result. */
uint32_t crc32c(uint32_t crc, const void *buf, size_t size);
