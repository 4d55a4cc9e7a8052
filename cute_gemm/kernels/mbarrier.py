"""Waiting for an mbarrier phase, with the retry loop written in PTX."""

from __future__ import annotations

from cutlass import Int32
from cutlass._mlir.dialects import llvm
from cutlass.cutlass_dsl import T, dsl_user_op

_WAIT_PTX = """{
.reg .pred done;
mbarrier.try_wait.parity.shared::cta.b64 done, [$0], $1;
@done bra.uni wait_done;
wait_retry:
mbarrier.try_wait.parity.shared::cta.b64 done, [$0], $1, 0x989680;
@!done bra.uni wait_retry;
wait_done:
}"""


@dsl_user_op
def wait_phase(mbar_ptr, phase, *, loc=None, ip=None) -> None:
    """Block until the mbarrier at ``mbar_ptr`` (shared memory) has completed phase parity ``phase``.

    NOTES: ``cute.arch.mbarrier_wait`` leaves the retry loop to the compiler, which sometimes
    placed it inside the K loop (a loop head before every barrier test): ptxas could then not
    move the next K block's test in among the promotion FFMAs, and the same kernel ran 3-8%
    slower depending on unrelated code elsewhere in it (H200). Written in PTX, as CUTLASS's C++
    ``ClusterBarrier::wait`` does, the retry is a branch out of line.
    """
    address = llvm.ptrtoint(T.i32(), mbar_ptr.to_llvm_ptr(loc=loc, ip=ip), loc=loc, ip=ip)
    llvm.inline_asm(
        None, [address, Int32(phase).ir_value(loc=loc, ip=ip)], _WAIT_PTX, "r,r",
        has_side_effects=True, is_align_stack=False, asm_dialect=llvm.AsmDialect.AD_ATT,
        loc=loc, ip=ip,
    )
