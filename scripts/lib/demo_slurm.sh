# shellcheck shell=bash
# The Slurm part of scripts/demo (sourced by it, after the build): starts the local one-host
# Slurm (slurm/local-cluster), submits the example trainer with slurm/train_mpirun.sbatch,
# preempts it once with a job in the high-priority partition, shows the save, the requeue and
# the resume, lets it finish, prints a summary and stops the cluster it started.
#
# Expects from scripts/demo: ranks, total_steps, ckpt_every, step_sleep_ms, trainer, tool,
# demo_dir, and the functions final_digest, checkpoint_files, latest_name, train.

demo_slurm_cluster="${demo_dir}/cluster"
demo_slurm_started=0
demo_slurm_stop() {
  if ((demo_slurm_started)); then
    "${CKPTIO_REPO_ROOT}/slurm/local-cluster" stop "${demo_slurm_cluster}" || true
    demo_slurm_started=0
  fi
}

# The job's state as `scontrol show job` prints it.
demo_slurm_field() {
  scontrol show job "$1" -o 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1
}

demo_slurm() {
  local root="${demo_dir}/preempted" out="${demo_dir}/job.out" straight_root="${demo_dir}/uninterrupted"
  ckptio_section "starting a local one-host Slurm (slurm/local-cluster) in ${demo_slurm_cluster}"
  "${CKPTIO_REPO_ROOT}/slurm/local-cluster" start "${demo_slurm_cluster}" || ckptio_die "the local Slurm did not start"
  demo_slurm_started=1
  export SLURM_CONF="${demo_slurm_cluster}/slurm.conf"
  sinfo

  ckptio_section "reference: ${total_steps} steps on ${ranks} ranks without an interruption (plain mpiexec)"
  train "${demo_dir}/straight.log" --ckpt-dir "${straight_root}" --steps "${total_steps}" \
    --ckpt-every "${ckpt_every}" --no-preemption-guard >/dev/null || ckptio_die "the uninterrupted run failed"
  local straight_digest
  straight_digest="$(final_digest "${demo_dir}/straight.log")"
  echo "final digest: ${straight_digest}"

  ckptio_section "sbatch: ${ranks} ranks, ${total_steps} steps, a checkpoint every ${ckpt_every}, in the low partition"
  local job
  job=$(sbatch --parsable -p low -n "${ranks}" --job-name=ckptio-demo --output="${out}" \
    "${CKPTIO_REPO_ROOT}/slurm/train_mpirun.sbatch" "${trainer}" --ckpt-dir "${root}" --steps "${total_steps}" \
    --ckpt-every "${ckpt_every}" --step-sleep-ms "${step_sleep_ms}")
  job=${job%%;*}
  echo "submitted job ${job} (slurm/train_mpirun.sbatch: --signal=B:USR1@120 --requeue --open-mode=append)"
  local waited=0
  until grep -qs 'global_step20\.h5' "${root}/latest" || ((waited > 1200)); do
    sleep 0.1
    waited=$((waited + 1))
  done
  echo "checkpoint of step 20 committed; job ${job} is $(demo_slurm_field "${job}" JobState)"

  ckptio_section "preemption: a ${ranks}-task job in the high partition (PriorityTier=10) needs the CPUs"
  local high
  high=$(sbatch --parsable -p high -n "${ranks}" --job-name=ckptio-urgent --output="${demo_dir}/urgent.out" \
    --wrap 'sleep 5')
  echo "submitted job ${high} to the high partition"
  local last="" state now
  waited=0
  while ((waited < 1800)); do
    state="$(demo_slurm_field "${job}" JobState) (Restarts=$(demo_slurm_field "${job}" Restarts)); urgent job ${high}: $(demo_slurm_field "${high}" JobState)"
    if [[ "${state}" != "${last}" ]]; then
      printf '  %s  job %s: %s\n' "$(date -u +%T)" "${job}" "${state}"
      last="${state}"
    fi
    now="$(demo_slurm_field "${job}" JobState)"
    [[ "${now}" =~ ^(COMPLETED|FAILED|CANCELLED|TIMEOUT)$ ]] && break
    sleep 0.2
    waited=$((waited + 1))
  done

  ckptio_section "the job's output (both runs, appended to ${out})"
  cat "${out}"
  ckptio_section "ckptio ls ${root}"
  "${tool}" ls "${root}" || ckptio_die "ckptio ls failed"

  ckptio_section "export the final checkpoint's EMA to safetensors (for inference)"
  local export_file="${demo_dir}/ema.safetensors"
  rm -f "${export_file}"
  mpiexec -n 2 --oversubscribe "${tool}" export "${root}" --group ema --out "${export_file}" --quiet ||
    ckptio_die "ckptio export failed"
  "${tool}" inspect "${export_file}" || ckptio_die "ckptio inspect of the export failed"

  local resumed_digest restarts job_state stop_step
  resumed_digest="$(final_digest "${out}")"
  restarts="$(demo_slurm_field "${job}" Restarts)"
  job_state="$(demo_slurm_field "${job}" JobState)"
  stop_step="$(sed -n 's/.*agreed stop at step \([0-9]*\) .*/\1/p' "${out}" | head -n 1)"
  demo_slurm_stop

  printf '\n==================== ckptio demo (Slurm) ====================\n'
  printf 'Job %s: %d ranks, %d steps, a checkpoint every %d; final state %s.\n' "${job}" "${ranks}" \
    "${total_steps}" "${ckpt_every}" "${job_state}"
  printf 'Preempted by job %s: the ranks agreed to stop at step %s, saved it, requeued the job and exited.\n' \
    "${high}" "${stop_step:-?}"
  printf 'Preemptions survived: %s (SLURM_RESTART_COUNT of the last run).\n' "${restarts:-0}"
  printf 'The second run resumed from step %s and trained up to step %d.\n' "${stop_step:-?}" "${total_steps}"
  printf 'Checkpoints in the root: %s (latest: %s)\n' "$(checkpoint_files "${root}")" "$(latest_name "${root}")"
  printf 'EMA exported to safetensors: %s (%s bytes)\n' "${export_file}" "$(stat -c %s "${export_file}")"
  printf 'Final digest, preempted and resumed:  %s\n' "${resumed_digest:-(none printed)}"
  printf 'Final digest, uninterrupted:          %s\n' "${straight_digest:-(none printed)}"
  local ok=0
  [[ -n "${resumed_digest}" && "${resumed_digest}" == "${straight_digest}" && "${job_state}" == COMPLETED &&
    "${restarts}" == 1 ]] && ok=1
  if ((ok)); then
    printf 'MATCH: preemption, requeue and resume changed nothing.\n'
  else
    printf 'MISMATCH: the preempted job did not reproduce the uninterrupted run.\n'
  fi
  printf '=============================================================\n'
  ((ok))
}
