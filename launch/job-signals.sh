# launch/job-signals.sh — sourced by launch/run and launch/simulate-hosts: run a job so that
# preemption (SIGTERM), Ctrl-C (SIGINT) and a closed terminal (SIGHUP) end it with a checkpoint.
#
# mpirun answers SIGTERM and SIGINT by killing its ranks about a second later (SIGTERM, then
# SIGKILL), too soon for a large checkpoint; it forwards SIGUSR1 to every rank and kills none.
# rezero treats SIGUSR1 like SIGTERM: every rank stops at the same step, rank 0 writes one
# checkpoint, the job exits 0. So the signals must not reach mpirun:
#  * the job runs in a session of its own (setsid), so a terminal's Ctrl-C, which goes to the
#    whole foreground process group, reaches only this script;
#  * the first SIGTERM, SIGINT or SIGHUP here becomes one SIGUSR1 for the job;
#  * a second SIGINT (Ctrl-C twice) is passed on as SIGINT, which ends the job at once;
#    repeated SIGTERMs (schedulers send several) are not.
# The caller defines PROG (for messages) and calls restore_sigint "$@" before anything else.

stopped_by=""   # the first stop signal's name, once one has arrived
rc=0            # the last job's exit status
_job=""         # the running job's pid
_stops=0

# restore_sigint "$@" — called first thing by the script: a script started in the background by
# a non-interactive shell inherits SIGINT ignored, and bash cannot trap a signal ignored on entry;
# the script starts again with SIGINT restored, so that SIGINT to it still stops the job.
restore_sigint() {
  local ignored
  ignored=$(awk '/^SigIgn:/ { print $2 }' /proc/$$/status 2>/dev/null) || return 0
  if (( 0x${ignored:-0} & 2 )) && env --default-signal=INT true 2>/dev/null; then
    exec env --default-signal=INT "$0" "$@"
  fi
}

_stop() {  # $1: the signal's name
  _stops=$((_stops + 1))
  if (( _stops == 1 )); then
    stopped_by=$1
    echo "[$PROG] SIG$1: asking the job to checkpoint and stop (SIGUSR1); Ctrl-C again ends it at once" >&2
    [[ -n "$_job" ]] && kill -USR1 "$_job" 2>/dev/null
  elif [[ $1 == INT && -n "$_job" ]]; then
    echo "[$PROG] second SIGINT: ending the job now, without a checkpoint" >&2
    kill -INT "$_job" 2>/dev/null
  fi
  return 0
}
# run_stoppable CMD... — runs CMD (mpirun, or a one-rank rezero) as above until it exits and sets
# rc to its exit status; does nothing once a stop signal has arrived (check stopped_by after).
run_stoppable() {
  [[ -z "$stopped_by" ]] || return 0
  trap '_stop TERM' TERM
  trap '_stop INT' INT
  trap '_stop HUP' HUP
  setsid "$@" &
  _job=$!
  # A signal that arrived just before $! was known still reaches the job.
  [[ -z "$stopped_by" ]] || kill -USR1 "$_job" 2>/dev/null
  # wait returns early when a trapped signal arrives; wait again until the job has exited.
  while :; do
    wait "$_job" && rc=0 || rc=$?
    kill -0 "$_job" 2>/dev/null || break
  done
  _job=""
}
