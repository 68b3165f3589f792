// Debian's libzmq.pc adds a flag SwiftPM rejects, and zmq.h is on the default path.
#include <zmq.h>
