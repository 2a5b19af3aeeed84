#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include "ledger_platform.h"

int ledger_o_direct(void) {
#ifdef O_DIRECT
    return O_DIRECT;
#else
    return 0;
#endif
}

int ledger_fallocate(int fd, int64_t offset, int64_t length) {
    return fallocate(fd, 0, (off_t)offset, (off_t)length) == 0 ? 0 : -errno;
}

int ledger_block_device_size(int fd, uint64_t *size_bytes) {
    return ioctl(fd, BLKGETSIZE64, size_bytes) == 0 ? 0 : -errno;
}

int ledger_block_device_discard(int fd, uint64_t offset, uint64_t length) {
    uint64_t range[2] = {offset, length};
    return ioctl(fd, BLKDISCARD, &range) == 0 ? 0 : -errno;
}
