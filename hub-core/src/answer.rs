//! How a worker's answer gets back to the IO unit that queued the job.
//!
//! A tokio oneshot would wake the waiting connection's task straight from the worker thread,
//! and tokio schedules a task woken from outside its runtime by writing the runtime's
//! eventfd: one syscall per answer, and a wake of the unit if it sleeps. Instead, a job queued
//! on an IO unit carries the unit's [`Mailbox`]: the worker leaves the waiting task's waker
//! there, and only the answer that finds the mailbox empty wakes the unit, through the unit's
//! [`companion`] task, which then wakes the waiting tasks from inside the runtime (no
//! syscall). Answers that finish while the unit is busy, or before it wakes, cost one wake.
//! In thread mode this took the eventfd writes from 0.78 to 0.16 per request
//! (docs/benchmark-log.md, session 10).
//!
//! A job queued on a thread without a companion is answered the plain way: the worker wakes
//! the waiter.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::queue::Refusal;

/// The worker dropped a job without answering it (only a panic outside the handler's own
/// cage, or a queue dropped with jobs in it, can do that).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unanswered;

/// The answer of a queued job: its value, or why it did not run. Dropping it before a worker
/// starts the job cancels the job.
#[derive(Debug)]
pub struct JobResult<T> {
    slot: Arc<Slot<T>>,
}

/// The worker's end: sends the answer once; dropped unsent, it tells the waiter so.
pub(crate) struct Reply<T> {
    slot: Arc<Slot<T>>,
    mailbox: Option<Arc<Mailbox>>,
}

#[derive(Debug)]
struct Slot<T> {
    state: Mutex<State<T>>,
}

#[derive(Debug)]
struct State<T> {
    answer: Option<Result<T, Refusal>>,
    waiter: Option<Waker>,
    /// The waiter dropped its `JobResult`: the job need not run.
    waiter_gone: bool,
    /// The `Reply` was dropped, after sending or not.
    replied: bool,
}

impl<T> Slot<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T> State<T> {
    /// The answer if it has come, or `Unanswered` if the reply was dropped without one.
    fn take(&mut self) -> Option<Result<Result<T, Refusal>, Unanswered>> {
        match self.answer.take() {
            Some(answer) => {
                // The reply, if not yet dropped, would otherwise wake the waiter for nothing.
                self.waiter = None;
                Some(Ok(answer))
            }
            None if self.replied => Some(Err(Unanswered)),
            None => None,
        }
    }
}

/// A job's two ends; the reply posts to this thread's mailbox if it has one.
pub(crate) fn channel<T>() -> (Reply<T>, JobResult<T>) {
    let mailbox = MAILBOX.with_borrow(Option::clone);
    channel_via(mailbox)
}

fn channel_via<T>(mailbox: Option<Arc<Mailbox>>) -> (Reply<T>, JobResult<T>) {
    let slot = Arc::new(Slot {
        state: Mutex::new(State {
            answer: None,
            waiter: None,
            waiter_gone: false,
            replied: false,
        }),
    });
    let reply = Reply {
        slot: Arc::clone(&slot),
        mailbox,
    };
    (reply, JobResult { slot })
}

impl<T> Reply<T> {
    /// Whether the waiter stopped waiting.
    pub(crate) fn is_closed(&self) -> bool {
        self.slot.lock().waiter_gone
    }

    /// Sends the answer (the waiter is told when the reply is dropped, here); answers whether
    /// anyone was still waiting for it.
    pub(crate) fn send(self, answer: Result<T, Refusal>) -> bool {
        let mut state = self.slot.lock();
        state.answer = Some(answer);
        !state.waiter_gone
    }
}

impl<T> Drop for Reply<T> {
    fn drop(&mut self) {
        let waiter = {
            let mut state = self.slot.lock();
            state.replied = true;
            state.waiter.take()
        };
        if let Some(waiter) = waiter {
            match &self.mailbox {
                Some(mailbox) => mailbox.post(waiter),
                None => waiter.wake(),
            }
        }
    }
}

impl<T> JobResult<T> {
    /// The answer if it has come, without waiting.
    pub fn try_take(&mut self) -> Option<Result<Result<T, Refusal>, Unanswered>> {
        self.slot.lock().take()
    }
}

impl<T> Future for JobResult<T> {
    type Output = Result<Result<T, Refusal>, Unanswered>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.slot.lock();
        if let Some(outcome) = state.take() {
            return Poll::Ready(outcome);
        }
        match &mut state.waiter {
            Some(waiter) if waiter.will_wake(cx.waker()) => {}
            waiter => *waiter = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T> Drop for JobResult<T> {
    fn drop(&mut self) {
        let mut state = self.slot.lock();
        state.waiter_gone = true;
        // An answer that came but was not taken is dropped with the slot.
        state.waiter = None;
    }
}

thread_local! {
    /// The mailbox of the IO unit this thread is, while its companion lives.
    static MAILBOX: RefCell<Option<Arc<Mailbox>>> = const { RefCell::new(None) };
}

/// The task an IO unit runs beside its connections: it opens the thread's mailbox when it
/// first runs and wakes the tasks whose answers have come each time a worker wakes it.
/// Dropped (with its runtime), it closes the mailbox: later answers wake their waiters
/// directly. Every thread that awaits many `JobResult`s on a current-thread runtime can run
/// one (the end-to-end bench's hand-off peer does).
pub fn companion() -> impl Future<Output = ()> + Send {
    Companion {
        mailbox: Arc::new(Mailbox::default()),
        spare: Vec::new(),
        opened: false,
    }
}

struct Companion {
    mailbox: Arc<Mailbox>,
    /// The delivered wakers' buffer, kept so that delivering allocates nothing.
    spare: Vec<Waker>,
    opened: bool,
}

impl Future for Companion {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if !this.opened {
            MAILBOX.with_borrow_mut(|mailbox| *mailbox = Some(Arc::clone(&this.mailbox)));
            this.opened = true;
        }
        this.mailbox.deliver(cx, &mut this.spare);
        Poll::Pending
    }
}

impl Drop for Companion {
    fn drop(&mut self) {
        if self.opened {
            // At thread exit the thread-local may be gone already.
            let _ = MAILBOX.try_with(|mailbox| {
                if let Ok(mut mailbox) = mailbox.try_borrow_mut() {
                    if mailbox
                        .as_ref()
                        .is_some_and(|m| Arc::ptr_eq(m, &self.mailbox))
                    {
                        *mailbox = None;
                    }
                }
            });
        }
        self.mailbox.close();
    }
}

/// An IO unit's mailbox: the wakers of its tasks whose answers have come.
#[derive(Debug, Default)]
pub(crate) struct Mailbox {
    posted: Mutex<Posted>,
}

#[derive(Debug, Default)]
struct Posted {
    wakers: Vec<Waker>,
    /// The companion, while it waits for a first post.
    unit: Option<Waker>,
    /// The companion is gone: nobody delivers.
    closed: bool,
}

impl Mailbox {
    fn lock(&self) -> MutexGuard<'_, Posted> {
        self.posted.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Leaves `waker` for the unit; wakes the unit if this is the first since it last looked.
    fn post(&self, waker: Waker) {
        let unit = {
            let mut posted = self.lock();
            if posted.closed {
                drop(posted);
                waker.wake();
                return;
            }
            posted.wakers.push(waker);
            posted.unit.take()
        };
        if let Some(unit) = unit {
            unit.wake();
        }
    }

    /// On the unit: wakes the tasks whose answers have come (through `spare`, a buffer kept
    /// between calls so that no call allocates), and asks to be woken by the next post.
    fn deliver(&self, cx: &Context<'_>, spare: &mut Vec<Waker>) {
        {
            let mut posted = self.lock();
            std::mem::swap(&mut posted.wakers, spare);
            match &mut posted.unit {
                Some(unit) if unit.will_wake(cx.waker()) => {}
                unit => *unit = Some(cx.waker().clone()),
            }
        }
        for waker in spare.drain(..) {
            waker.wake();
        }
    }

    /// Wakes what was posted and makes later posts wake their waiters directly.
    fn close(&self) {
        let posted = {
            let mut posted = self.lock();
            posted.closed = true;
            posted.unit = None;
            std::mem::take(&mut posted.wakers)
        };
        for waker in posted {
            waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting() -> (Arc<CountingWaker>, Waker) {
        let count = Arc::new(CountingWaker::default());
        (Arc::clone(&count), Waker::from(count))
    }

    fn poll<T>(result: &mut JobResult<T>, waker: &Waker) -> Poll<<JobResult<T> as Future>::Output> {
        Pin::new(result).poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn an_answer_wakes_its_waiter_and_is_taken_once() {
        let (reply, mut result) = channel_via::<u32>(None);
        let (count, waker) = counting();
        assert!(poll(&mut result, &waker).is_pending());
        assert!(reply.send(Ok(7)), "someone waited");
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(poll(&mut result, &waker), Poll::Ready(Ok(Ok(7))));
    }

    #[test]
    fn a_reply_dropped_unsent_is_unanswered_and_a_dropped_result_closes_the_job() {
        let (reply, mut result) = channel_via::<u32>(None);
        drop(reply);
        assert_eq!(result.try_take(), Some(Err(Unanswered)));

        let (reply, result) = channel_via::<u32>(None);
        assert!(!reply.is_closed());
        drop(result);
        assert!(reply.is_closed());
        assert!(!reply.send(Ok(1)), "nobody waits: dropped quietly");
    }

    /// Answers posted before the unit looks wake it once; it then wakes every waiter.
    #[test]
    fn a_mailbox_wakes_its_unit_once_per_batch() {
        let mailbox = Arc::new(Mailbox::default());
        let (unit_count, unit) = counting();
        let mut spare = Vec::new();
        mailbox.deliver(&Context::from_waker(&unit), &mut spare);
        let waiters: Vec<_> = (0..3)
            .map(|i| {
                let (reply, mut result) = channel_via::<u32>(Some(Arc::clone(&mailbox)));
                let (count, waker) = counting();
                assert!(poll(&mut result, &waker).is_pending());
                (i, reply, result, count, waker)
            })
            .collect();
        let mut pending = Vec::new();
        for (i, reply, result, count, waker) in waiters {
            reply.send(Ok(i));
            assert_eq!(
                count.0.load(Ordering::SeqCst),
                0,
                "woken only through the unit"
            );
            pending.push((i, result, count, waker));
        }
        assert_eq!(
            unit_count.0.load(Ordering::SeqCst),
            1,
            "one wake for three answers"
        );
        mailbox.deliver(&Context::from_waker(&unit), &mut spare);
        for (i, mut result, count, waker) in pending {
            assert_eq!(count.0.load(Ordering::SeqCst), 1);
            assert_eq!(poll(&mut result, &waker), Poll::Ready(Ok(Ok(i))));
        }
        // the next answer wakes the unit again
        let (reply, mut result) = channel_via::<u32>(Some(Arc::clone(&mailbox)));
        let (_, waker) = counting();
        assert!(poll(&mut result, &waker).is_pending());
        reply.send(Ok(9));
        assert_eq!(unit_count.0.load(Ordering::SeqCst), 2);
        // closing wakes what waits in the mailbox, and later answers wake their waiters
        let (posted_count, posted) = counting();
        let (reply, mut late) = channel_via::<u32>(Some(Arc::clone(&mailbox)));
        let (late_count, late_waker) = counting();
        assert!(poll(&mut late, &late_waker).is_pending());
        mailbox.post(posted);
        mailbox.close();
        assert_eq!(posted_count.0.load(Ordering::SeqCst), 1);
        reply.send(Ok(10));
        assert_eq!(late_count.0.load(Ordering::SeqCst), 1);
        assert_eq!(poll(&mut result, &late_waker), Poll::Ready(Ok(Ok(9))));
        assert_eq!(poll(&mut late, &late_waker), Poll::Ready(Ok(Ok(10))));
    }

    /// Jobs queued and awaited on a runtime with a companion come back through its mailbox;
    /// a job whose waiter is on another thread is answered there all the same.
    #[test]
    fn a_companion_delivers_its_units_answers() {
        let config = crate::Config {
            workers: 2,
            ..crate::Config::default()
        };
        let pool = crate::StandalonePool::start(&config).expect("spawn");
        let queue = Arc::clone(pool.queue());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let got: Vec<u64> = rt.block_on(async {
            tokio::spawn(companion());
            tokio::task::yield_now().await; // the companion opens the mailbox
            assert!(MAILBOX.with_borrow(Option::is_some));
            let answers: Vec<_> = (0..200u64)
                .map(|i| queue.submit(move || i + 1).expect("admitted"))
                .collect();
            let mut got = Vec::new();
            for a in answers {
                got.push(a.await.expect("answered").expect("ran"));
            }
            // queued here, awaited on another thread: posted here, woken there
            let elsewhere = queue.submit(|| 7u64).expect("admitted");
            let other = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .build()
                    .expect("runtime")
                    .block_on(elsewhere)
            });
            while !other.is_finished() {
                tokio::task::yield_now().await;
            }
            got.push(
                other
                    .join()
                    .expect("thread")
                    .expect("answered")
                    .expect("ran"),
            );
            got
        });
        let mut want: Vec<u64> = (1..=200).collect();
        want.push(7);
        assert_eq!(got, want);
        drop(rt); // drops the companion: the thread has no mailbox any more
        assert!(MAILBOX.with_borrow(Option::is_none));
    }
}
