// OpenMPI's handles are macros (pointers to global structs) that Swift cannot import;
// these accessors expose the ones fleet uses.
#include <mpi.h>

static inline MPI_Comm _Nonnull fleet_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Comm _Nonnull fleet_mpi_comm_null(void) { return MPI_COMM_NULL; }
static inline MPI_Datatype _Nonnull fleet_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Datatype _Nonnull fleet_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype _Nonnull fleet_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Op _Nonnull fleet_mpi_op_sum(void) { return MPI_SUM; }
static inline MPI_Op _Nonnull fleet_mpi_op_max(void) { return MPI_MAX; }
static inline MPI_Op _Nonnull fleet_mpi_op_min(void) { return MPI_MIN; }
static inline void * _Nonnull fleet_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Errhandler _Nonnull fleet_mpi_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline MPI_Request _Nonnull fleet_mpi_request_null(void) { return MPI_REQUEST_NULL; }
static inline MPI_Group _Nonnull fleet_mpi_group_null(void) { return MPI_GROUP_NULL; }
static inline int fleet_mpi_any_source(void) { return MPI_ANY_SOURCE; }
static inline int fleet_mpi_any_tag(void) { return MPI_ANY_TAG; }
