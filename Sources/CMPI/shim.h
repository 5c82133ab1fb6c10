// OpenMPI defines MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, MPI_IN_PLACE, ... as macros that cast the
// addresses of global symbols; Swift's importer skips such macros, so they are re-exported here
// as inline functions.
#include <mpi.h>

static inline MPI_Comm rezero_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype rezero_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype rezero_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype rezero_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Op rezero_mpi_sum(void) { return MPI_SUM; }
static inline MPI_Op rezero_mpi_max(void) { return MPI_MAX; }
static inline MPI_Op rezero_mpi_min(void) { return MPI_MIN; }
static inline void *rezero_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Status *rezero_mpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline int rezero_mpi_success(void) { return MPI_SUCCESS; }
static inline MPI_Info rezero_mpi_info_null(void) { return MPI_INFO_NULL; }
static inline MPI_Errhandler rezero_mpi_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline MPI_Status *rezero_mpi_statuses_ignore(void) { return MPI_STATUSES_IGNORE; }
static inline MPI_Datatype rezero_mpi_int(void) { return MPI_INT; }
