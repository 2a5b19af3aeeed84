#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <signal.h>
#include <string.h>
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

// A signal handler may only touch a volatile sig_atomic_t: the loop polls it each turn.
static volatile sig_atomic_t ledger_stop_signal = 0;

static void ledger_stop_signal_handler(int signal_number) { ledger_stop_signal = signal_number; }

int ledger_stop_signals_install(void) {
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_handler = ledger_stop_signal_handler;
    sigemptyset(&action.sa_mask);
    // No SA_RESTART: a blocking wait returns EINTR so the loop sees the signal at once.
    if (sigaction(SIGINT, &action, NULL) != 0) return -errno;
    if (sigaction(SIGTERM, &action, NULL) != 0) return -errno;
    // A parent may have started us with these signals blocked (the mask is inherited): a
    // server that cannot be stopped cleanly is worse than one that ignores the parent's wish.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    if (sigprocmask(SIG_UNBLOCK, &stop_signals, NULL) != 0) return -errno;
    return 0;
}

int ledger_stop_signal_received(void) { return (int)ledger_stop_signal; }
