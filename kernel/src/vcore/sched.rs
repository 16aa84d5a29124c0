//! The vcore scheduler's decisions, portable: one round-robin run queue of
//! every VM's vcores, the count of each VM's vcores on physical cores, and
//! VM events (reboot, stop) that take every vcore of a VM off the cores
//! for good. The firmware keeps one `Scheduler` behind a lock; thread 0 of
//! each core takes a vcore, runs it and gives it back.
//!
//! Invariants (host-tested with threads as cores): a vcore is either
//! waiting in the queue or on exactly one core; once an event is posted
//! for a VM none of its vcores is taken, and the last of them to come off
//! a core is told to act on the event, exactly once, with the VM's
//! waiting vcores removed from the queue.

use super::RunQueue;
use alloc::vec::Vec;

/// What the scheduler needs to know of a VM.
pub trait SchedVm {
    /// Unique among live VMs.
    fn id(&self) -> usize;
    /// Whether vcore `vcore` wants a core now (some vcpu of it started).
    fn wants_core(&self, vcore: u32) -> bool;
}

/// A shared VM is scheduled as the VM.
impl<V: SchedVm + ?Sized> SchedVm for alloc::sync::Arc<V> {
    fn id(&self) -> usize {
        (**self).id()
    }
    fn wants_core(&self, vcore: u32) -> bool {
        (**self).wants_core(vcore)
    }
}

/// What takes every vcore of a VM off the cores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event<O> {
    /// Reset and run again (`system-reboot`).
    Reboot,
    /// Stop for good with this outcome.
    Stop(O),
}

/// What the thread that gave a vcore back does next.
#[derive(Debug)]
pub enum GiveBack<T, O> {
    /// The vcore waits in the queue again.
    Queued,
    /// The VM has an event, and other vcores of it are still on cores:
    /// the last of them acts.
    Others,
    /// This was the VM's last vcore on a core: act on the event (the VM's
    /// vcores are out of the queue; after a reboot, `add` them again).
    Act(T, Event<O>),
}

pub struct Scheduler<T, O> {
    waiting: RunQueue<(T, u32)>,
    /// Posted events, by VM id.
    events: Vec<(usize, Event<O>)>,
    /// Vcores on cores, by VM id.
    on_core: Vec<(usize, u32)>,
}

impl<T: SchedVm + Clone, O: Clone> Default for Scheduler<T, O> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: SchedVm + Clone, O: Clone> Scheduler<T, O> {
    pub const fn new() -> Self {
        Scheduler {
            waiting: RunQueue::new(),
            events: Vec::new(),
            on_core: Vec::new(),
        }
    }

    /// Queues every vcore of `vm` (a new VM, or one just rebooted).
    pub fn add(&mut self, vm: &T, vcores: u32) {
        for v in 0..vcores {
            self.waiting.push((vm.clone(), v));
        }
    }

    fn has_event(events: &[(usize, Event<O>)], vm: usize) -> bool {
        events.iter().any(|(i, _)| *i == vm)
    }

    fn on_core_mut(&mut self, vm: usize) -> &mut u32 {
        let i = match self.on_core.iter().position(|(v, _)| *v == vm) {
            Some(i) => i,
            None => {
                self.on_core.push((vm, 0));
                self.on_core.len() - 1
            }
        };
        &mut self.on_core[i].1
    }

    /// Vcores of VM `vm` on cores now.
    pub fn on_core(&self, vm: usize) -> u32 {
        self.on_core
            .iter()
            .find(|(v, _)| *v == vm)
            .map_or(0, |(_, n)| *n)
    }

    /// The first waiting vcore that wants a core and whose VM has no
    /// event, now counted as on a core.
    pub fn take(&mut self) -> Option<(T, u32)> {
        let events = &self.events;
        let (vm, vcore) = self
            .waiting
            .take(|(vm, v)| !Self::has_event(events, vm.id()) && vm.wants_core(*v))?;
        *self.on_core_mut(vm.id()) += 1;
        Some((vm, vcore))
    }

    /// Whether a vcore that could be taken waits (a time slice that ends
    /// then gives its core up).
    pub fn others_waiting(&self) -> bool {
        self.waiting
            .any(|(vm, v)| !Self::has_event(&self.events, vm.id()) && vm.wants_core(*v))
    }

    /// A vcore taken with `take` is off its core.
    pub fn give_back(&mut self, vm: T, vcore: u32) -> GiveBack<T, O> {
        let id = vm.id();
        let left = {
            let n = self.on_core_mut(id);
            debug_assert!(*n > 0, "gave back a vcore that was not taken");
            *n -= 1;
            *n
        };
        let Some(i) = self.events.iter().position(|(v, _)| *v == id) else {
            self.waiting.push((vm, vcore));
            return GiveBack::Queued;
        };
        if left != 0 {
            return GiveBack::Others;
        }
        let (_, event) = self.events.swap_remove(i);
        self.waiting.retain(|(v, _)| v.id() != id);
        self.on_core.retain(|(v, _)| *v != id);
        GiveBack::Act(vm, event)
    }

    /// Posts `e` for VM `vm`, which must have a vcore on a core (events
    /// come from running vcpus). The first event stands, except that a
    /// stop replaces a pending reboot. Returns whether the VM's running
    /// vcores must now be told to leave (the first event posted).
    pub fn post(&mut self, vm: usize, e: Event<O>) -> bool {
        match self.events.iter().position(|(v, _)| *v == vm) {
            None => {
                self.events.push((vm, e));
                true
            }
            Some(i) => {
                if matches!(self.events[i].1, Event::Reboot) && matches!(e, Event::Stop(_)) {
                    self.events[i].1 = e;
                }
                false
            }
        }
    }

    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests;
