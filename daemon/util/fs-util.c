/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Stateless helpers; every fd opened here is O_CLOEXEC and closed before returning. */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs-util.h"

static int rm_rf_children(int fd, dev_t dev) {
        DIR *d = fdopendir(fd);
        struct dirent *de;
        int r = 0;

        if (!d) {
                r = -errno;
                (void) close(fd);
                return r;
        }
        while ((errno = 0, de = readdir(d))) {
                struct stat st;

                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        if (errno != ENOENT && r == 0)
                                r = -errno;
                        continue;
                }
                if (S_ISDIR(st.st_mode)) {
                        int k, cfd;

                        /* a mount point inside is somebody else's tree */
                        if (st.st_dev != dev)
                                continue;
                        cfd = openat(dirfd(d), de->d_name,
                                     O_RDONLY|O_DIRECTORY|O_NOFOLLOW|O_CLOEXEC|O_NOATIME);
                        if (cfd < 0) {
                                if (r == 0)
                                        r = -errno;
                                continue;
                        }
                        k = rm_rf_children(cfd, dev);
                        if (k < 0 && r == 0)
                                r = k;
                        if (unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR) < 0 && errno != ENOENT && r == 0)
                                r = -errno;
                } else if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT && r == 0)
                        r = -errno;
        }
        if (errno != 0 && r == 0)
                r = -errno;
        closedir(d);
        return r;
}

int rm_rf_at(int dir_fd, const char *name) {
        struct stat st;
        int fd, r;

        if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!S_ISDIR(st.st_mode))
                return unlinkat(dir_fd, name, 0) < 0 && errno != ENOENT ? -errno : 0;

        fd = openat(dir_fd, name, O_RDONLY|O_DIRECTORY|O_NOFOLLOW|O_CLOEXEC|O_NOATIME);
        if (fd < 0)
                return -errno;
        r = rm_rf_children(fd, st.st_dev);
        if (unlinkat(dir_fd, name, AT_REMOVEDIR) < 0 && errno != ENOENT && r == 0)
                r = -errno;
        return r;
}

int copy_bytes(int in_fd, int out_fd, uint64_t max, uint64_t *ret_copied) {
        uint64_t total = 0;
        char buf[64 * 1024];

        for (;;) {
                ssize_t n = read(in_fd, buf, sizeof(buf));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                if ((uint64_t) n > max - total)
                        return -EFBIG;
                for (ssize_t off = 0; off < n;) {
                        ssize_t w = write(out_fd, buf + off, (size_t) (n - off));
                        if (w < 0) {
                                if (errno == EINTR)
                                        continue;
                                return -errno;
                        }
                        off += w;
                }
                total += (uint64_t) n;
        }
        if (ret_copied)
                *ret_copied = total;
        return 0;
}

int memfd_new_with_data(const char *name, const void *data, size_t size) {
        int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
        int r;

        if (fd < 0)
                return -errno;
        for (size_t off = 0; off < size;) {
                ssize_t w = write(fd, (const char *) data + off, size - off);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        (void) close(fd);
                        return r;
                }
                off += (size_t) w;
        }
        /* the job reads it from the start and can neither change nor grow it */
        if (lseek(fd, 0, SEEK_SET) < 0 ||
            fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) < 0) {
                r = -errno;
                (void) close(fd);
                return r;
        }
        return fd;
}

int filename_is_plain(const char *name) {
        size_t n = strlen(name);

        if (n == 0 || n > 255 || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
                return 0;
        for (const char *p = name; *p; p++)
                if (*p == '/' || (unsigned char) *p < 0x20 || *p == 0x7f)
                        return 0;
        return 1;
}
