#ifndef APIKEYD_MEMORY_HINTS_H
#define APIKEYD_MEMORY_HINTS_H

/// Starts loading the cache line at `address` for reading, without waiting for it (a hint: no
/// effect on what the program computes, and no fault for any address).
static inline void apikeyd_prefetch(const void *address) {
    __builtin_prefetch(address, 0, 3);
}

#endif
