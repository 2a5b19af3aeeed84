// Linux calls that Swift's Glibc module does not import (O_DIRECT, fallocate, block-device
// ioctls), wrapped as plain functions. See specs/swift-engineering.md §1 pitfall 2.
#pragma once
#include <stdint.h>

/// The O_DIRECT open flag (0 where the platform has none).
int ledger_o_direct(void);
