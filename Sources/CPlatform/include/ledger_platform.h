// Linux calls that Swift's Glibc module does not import (O_DIRECT, fallocate, block-device
// ioctls), wrapped as plain functions. See specs/swift-engineering.md §1 pitfall 2.
//
// Convention: functions that can fail return 0 on success and -errno on failure, so that Swift
// never has to read the thread-local errno after a call that went through C.
#pragma once
#include <stdint.h>

/// The O_DIRECT open flag (0 where the platform has none).
int ledger_o_direct(void);

/// fallocate(2) with `mode` 0: reserves [offset, offset + length) so later writes cannot fail
/// with ENOSPC. Returns 0 or -errno (-EOPNOTSUPP on filesystems without it).
int ledger_fallocate(int fd, int64_t offset, int64_t length);

/// The size in bytes of the block device open as `fd` (ioctl BLKGETSIZE64). Returns 0 or -errno.
int ledger_block_device_size(int fd, uint64_t *size_bytes);

/// Discards (trims) [offset, offset + length) of the block device open as `fd` (ioctl
/// BLKDISCARD). Returns 0 or -errno (-EOPNOTSUPP where the device cannot discard).
int ledger_block_device_discard(int fd, uint64_t offset, uint64_t length);

/// Installs handlers for SIGINT and SIGTERM that only record the signal (async-signal-safe), so
/// the server's loop can stop cleanly at its next turn. Returns 0 or -errno.
int ledger_stop_signals_install(void);

/// The stop signal received since install (SIGINT or SIGTERM), or 0.
int ledger_stop_signal_received(void);
