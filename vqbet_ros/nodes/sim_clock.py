"""The `/clock` of a simulator in fast (lockstep) mode, as both sim nodes and `vqbet-demo` see it."""

# After publishing a step's observations, a fast-mode sim advances /clock this far past their stamp, so that a
# use_sim_time timer due at the stamp (computed as t0 + k * dt, with float error) fires at it and not one step
# later.
CLOCK_LEAD_S = 1e-6
