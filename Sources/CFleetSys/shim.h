// Small wrappers over variadic or macro-only system calls that Swift cannot import.
#include <sys/prctl.h>
#include <signal.h>
#include <unistd.h>

/// Asks the kernel to send `sig` to this process when its parent dies, so that
/// self-launched workers never outlive their launcher.
static inline int fleet_set_parent_death_signal(int sig) { return prctl(PR_SET_PDEATHSIG, sig); }
