// Small wrappers over variadic or macro-only system calls that Swift cannot import.
#include <sys/prctl.h>
#include <signal.h>
#include <unistd.h>

/// Asks the kernel to send `sig` to this process when its parent dies, so that
/// self-launched workers never outlive their launcher.
static inline int fleet_set_parent_death_signal(int sig) { return prctl(PR_SET_PDEATHSIG, sig); }

#include <malloc.h>

/// Serve allocations up to `bytes` from the heap (not a fresh mmap each time), and keep freed
/// memory up to `trim` bytes mapped, so that repeatedly allocated large buffers are reused.
static inline void fleet_keep_allocations_on_heap(int bytes, int trim) {
    mallopt(M_MMAP_THRESHOLD, bytes);
    mallopt(M_TRIM_THRESHOLD, trim);
}
