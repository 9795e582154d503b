//! A PLIC (RISC-V platform-level interrupt controller, as Linux's `sifive,plic-1.0.0` driver
//! programs it) emulated through MMIO exits: per-source priority, the pending bits, and per
//! context the enables, the threshold and claim/complete. Contexts are laid out as QEMU
//! virt's (context `2n` is hart `n`'s M-mode, never used by the guest; `2n + 1` its S-mode:
//! [`s_context`]), so one device tree describes this PLIC and QEMU's. Sources are level-triggered: the gateway makes a source pending
//! while its line is high and it is not being served; a claim takes it, a complete lets
//! the gateway look at the line again.
//!
//! [`Plic::eip`] says which contexts have an interrupt to take: the hypervisor raises or
//! lowers the guest external interrupt (code 9) of each hart's vCPU to match.

/// Sources 1..SOURCES (source 0 does not exist).
pub const SOURCES: usize = 32;
/// Contexts: M and S for each of 2 harts.
pub const CONTEXTS: usize = 4;

/// Hart `hart`'s S-mode context.
pub const fn s_context(hart: usize) -> usize {
    2 * hart + 1
}
/// The register window's size.
pub const SIZE: usize = 0x60_0000;

const PENDING: usize = 0x1000;
const ENABLE: usize = 0x2000;
const ENABLE_STRIDE: usize = 0x80;
const CONTEXT: usize = 0x20_0000;
const CONTEXT_STRIDE: usize = 0x1000;

/// The PLIC's state.
#[derive(Debug, Clone, Default)]
pub struct Plic {
    priority: [u32; SOURCES],
    /// Bit `s`: source `s` is pending.
    pending: u32,
    /// Bit `s`: source `s` was claimed and not completed.
    serving: u32,
    /// Bit `s`: source `s`'s line is high.
    level: u32,
    enable: [u32; CONTEXTS],
    threshold: [u32; CONTEXTS],
}

impl Plic {
    /// Sets source `src`'s line.
    pub fn set_level(&mut self, src: usize, high: bool) {
        if !(1..SOURCES).contains(&src) {
            return;
        }
        let bit = 1 << src;
        if high {
            self.level |= bit;
        } else {
            self.level &= !bit;
            // A level source no longer asserted is no longer pending.
            self.pending &= !bit;
        }
        self.gateway();
    }

    fn gateway(&mut self) {
        self.pending |= self.level & !self.serving & !1;
    }

    /// The source context `ctx` would claim now (0: none).
    fn best(&self, ctx: usize) -> usize {
        let (Some(&en), Some(&th)) = (self.enable.get(ctx), self.threshold.get(ctx)) else {
            return 0;
        };
        let mut best = (0, 0);
        for s in 1..SOURCES {
            let p = self.priority[s];
            if (self.pending & en) & (1 << s) != 0 && p > th && p > best.1 {
                best = (s, p);
            }
        }
        best.0
    }

    /// Whether context `ctx` has an interrupt to take (its hart's external interrupt).
    pub fn eip(&self, ctx: usize) -> bool {
        self.best(ctx) != 0
    }

    /// A 32-bit read at `offset`.
    pub fn read(&mut self, offset: usize) -> u32 {
        match offset {
            o if o < PENDING => self.priority.get(o / 4).copied().unwrap_or(0),
            PENDING => self.pending,
            o if (ENABLE..CONTEXT).contains(&o) && (o - ENABLE) % ENABLE_STRIDE == 0 => self
                .enable
                .get((o - ENABLE) / ENABLE_STRIDE)
                .copied()
                .unwrap_or(0),
            o if o >= CONTEXT => {
                let (ctx, reg) = (
                    (o - CONTEXT) / CONTEXT_STRIDE,
                    (o - CONTEXT) % CONTEXT_STRIDE,
                );
                match reg {
                    0 => self.threshold.get(ctx).copied().unwrap_or(0),
                    4 => self.claim(ctx),
                    _ => 0,
                }
            }
            _ => 0,
        }
    }

    fn claim(&mut self, ctx: usize) -> u32 {
        let s = self.best(ctx);
        if s != 0 {
            self.pending &= !(1 << s);
            self.serving |= 1 << s;
        }
        s as u32
    }

    /// A 32-bit write of `v` at `offset`.
    pub fn write(&mut self, offset: usize, v: u32) {
        match offset {
            o if o < PENDING => {
                if let Some(p) = self.priority.get_mut(o / 4).filter(|_| o >= 4) {
                    *p = v & 7;
                }
            }
            o if (ENABLE..CONTEXT).contains(&o) && (o - ENABLE) % ENABLE_STRIDE == 0 => {
                if let Some(e) = self.enable.get_mut((o - ENABLE) / ENABLE_STRIDE) {
                    *e = v & !1;
                }
            }
            o if o >= CONTEXT => {
                let (ctx, reg) = (
                    (o - CONTEXT) / CONTEXT_STRIDE,
                    (o - CONTEXT) % CONTEXT_STRIDE,
                );
                match reg {
                    0 => {
                        if let Some(t) = self.threshold.get_mut(ctx) {
                            *t = v & 7;
                        }
                    }
                    4 => {
                        // Complete: only for a source enabled for this context.
                        let s = v as usize;
                        let en = self.enable.get(ctx).copied().unwrap_or(0);
                        if (1..SOURCES).contains(&s) && en & (1 << s) != 0 {
                            self.serving &= !(1 << s);
                            self.gateway();
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLAIM0: usize = CONTEXT + 4;

    #[test]
    fn a_level_source_is_claimed_once_and_comes_back_after_complete_while_high() {
        let mut p = Plic::default();
        p.write(10 * 4, 1);
        p.write(ENABLE, 1 << 10);
        p.set_level(10, true);
        assert!(p.eip(0));
        assert!(!p.eip(1), "not enabled for context 1");
        assert_eq!(p.read(PENDING), 1 << 10);
        assert_eq!(p.read(CLAIM0), 10);
        assert!(!p.eip(0), "taken until completed");
        assert_eq!(p.read(CLAIM0), 0);
        p.write(CLAIM0, 10);
        assert!(p.eip(0), "still high: pending again");
        assert_eq!(p.read(CLAIM0), 10);
        p.set_level(10, false);
        p.write(CLAIM0, 10);
        assert!(!p.eip(0));
    }

    #[test]
    fn priority_and_threshold_gate_delivery() {
        let mut p = Plic::default();
        p.write(ENABLE + ENABLE_STRIDE, 1 << 10);
        p.set_level(10, true);
        assert!(!p.eip(1), "priority 0 never interrupts");
        p.write(10 * 4, 2);
        assert!(p.eip(1));
        p.write(CONTEXT + CONTEXT_STRIDE, 2);
        assert!(!p.eip(1), "priority must exceed the threshold");
        assert_eq!(p.read(CONTEXT + CONTEXT_STRIDE), 2);
        p.write(CONTEXT + CONTEXT_STRIDE, 1);
        assert_eq!(p.read(CONTEXT + CONTEXT_STRIDE + 4), 10);
        // Out-of-range sources and contexts are ignored.
        p.set_level(40, true);
        p.write(CONTEXT + 5 * CONTEXT_STRIDE, 1);
        assert_eq!(p.read(CONTEXT + 5 * CONTEXT_STRIDE + 4), 0);
    }
}
