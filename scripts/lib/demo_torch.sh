# shellcheck shell=bash
# The PyTorch part of scripts/demo (sourced): examples/train_torch.py through the ckptio Python
# package, stopped with SIGTERM once its checkpoint at step 20 is committed (its
# PreemptionGuard saves the agreed step and exits 75), resumed, and compared with an
# uninterrupted run. Uses the variables and helpers of scripts/demo.

# True when the build made the Python package and its interpreter has torch.
demo_torch_available() {
  compgen -G "${CKPTIO_BUILD_DIR}/python/ckptio/_ckptio*.so" >/dev/null &&
    /usr/bin/python3 -c 'import torch, mpi4py' 2>/dev/null
}

demo_torch() {
  if ! demo_torch_available; then
    echo "(the Python package or torch is missing: skipping the PyTorch demo)"
    return 0
  fi
  local torch_ranks=2 root="${demo_dir}/torch" straight="${demo_dir}/torch-uninterrupted"
  local flags=(--steps "${total_steps}" --ckpt-every "${ckpt_every}")
  local trainer_py=(/usr/bin/python3 "${CKPTIO_REPO_ROOT}/examples/train_torch.py")
  export PYTHONPATH="${CKPTIO_BUILD_DIR}/python${PYTHONPATH:+:${PYTHONPATH}}"

  ckptio_section "PyTorch: ${torch_ranks} ranks run examples/train_torch.py (ckptio.torch.save every ${ckpt_every} steps); SIGTERM after step ${stop_after_step}"
  mpiexec -n "${torch_ranks}" --oversubscribe "${trainer_py[@]}" --ckpt-dir "${root}" "${flags[@]}" \
    --step-sleep-ms "${step_sleep_ms}" </dev/null > >(tee "${demo_dir}/torch1.log") 2>&1 &
  run1_pid=$!
  local waited=0
  while kill -0 "${run1_pid}" 2>/dev/null && ! grep -qs "global_step${stop_after_step}\.h5" "${root}/latest" &&
    ((waited < 3000)); do
    sleep 0.1
    waited=$((waited + 1))
  done
  if kill -0 "${run1_pid}" 2>/dev/null; then
    echo "--- sending SIGTERM to mpiexec (pid ${run1_pid}) ---"
    kill -TERM "${run1_pid}"
  fi
  wait "${run1_pid}" || true
  run1_pid=""

  ckptio_section "PyTorch: resume from $(latest_name "${root}")"
  mpiexec -n "${torch_ranks}" --oversubscribe "${trainer_py[@]}" --ckpt-dir "${root}" "${flags[@]}" --resume \
    </dev/null 2>&1 | tee "${demo_dir}/torch2.log" || ckptio_die "the resumed PyTorch run failed"
  ckptio_section "PyTorch: the same ${total_steps} steps without an interruption"
  mpiexec -n "${torch_ranks}" --oversubscribe "${trainer_py[@]}" --ckpt-dir "${straight}" "${flags[@]}" \
    </dev/null 2>&1 | tee "${demo_dir}/torch3.log" || ckptio_die "the uninterrupted PyTorch run failed"

  local resumed straight_digest
  resumed="$(final_digest "${demo_dir}/torch2.log")"
  straight_digest="$(final_digest "${demo_dir}/torch3.log")"
  printf '\n==================== ckptio PyTorch demo ====================\n'
  printf 'Stopped run: %s\n' "$(grep -E '^stopping at global_step' "${demo_dir}/torch1.log" || echo 'finished before the signal')"
  printf 'Final digest, stopped and resumed:  %s\n' "${resumed:-(none printed)}"
  printf 'Final digest, uninterrupted:        %s\n' "${straight_digest:-(none printed)}"
  if [[ -n "${resumed}" && "${resumed}" == "${straight_digest}" ]]; then
    printf 'MATCH: model, EMA, optimizer, scheduler, sampler and RNG states resumed exactly.\n'
    printf '=============================================================\n'
  else
    printf 'MISMATCH: the resumed PyTorch run did not reproduce the uninterrupted run.\n'
    printf '=============================================================\n'
    return 1
  fi
}
