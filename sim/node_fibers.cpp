#include "sim/node_fibers.hpp"

#include <boost/context/fiber.hpp>
#include <boost/context/protected_fixedsize_stack.hpp>

#include <deque>
#include <exception>
#include <stdexcept>

#ifdef RMAI_SANITIZE
#include <sanitizer/common_interface_defs.h>
#endif

namespace rmai::sim {

namespace ctx = boost::context;

namespace {
// A node's stack: the replay loop, its cache policy and the switch log's writer run on it. A guard
// page below it turns an overflow into a fault, not a corruption; untouched pages cost no memory.
constexpr std::size_t kStackBytes = 1 << 20;
constexpr std::size_t kNobody = ~std::size_t(0);

// AddressSanitizer must be told of every switch between stacks, or it takes the other stack for an
// overflow of this one; Debian's Boost.Context (fcontext) does not tell it.
struct Stack {
  const void* bottom = nullptr;
  std::size_t size = 0;
};
#ifdef RMAI_SANITIZE
void switching_to(void** fake_stack, const Stack& to) { __sanitizer_start_switch_fiber(fake_stack, to.bottom, to.size); }
void switched(void* fake_stack, Stack* from = nullptr) {
  __sanitizer_finish_switch_fiber(fake_stack, from ? &from->bottom : nullptr, from ? &from->size : nullptr);
}
#else
void switching_to(void**, const Stack&) {}
void switched(void*, Stack* = nullptr) {}
#endif

// protected_fixedsize_stack, noting where each stack lies (for the above).
class NotedStack {
 public:
  explicit NotedStack(Stack& noted) : noted_(noted), stacks_(kStackBytes) {}
  ctx::stack_context allocate() {
    ctx::stack_context stack = stacks_.allocate();
    noted_ = {static_cast<const char*>(stack.sp) - stack.size, stack.size};
    return stack;
  }
  void deallocate(ctx::stack_context& stack) noexcept { stacks_.deallocate(stack); }

 private:
  Stack& noted_;
  ctx::protected_fixedsize_stack stacks_;
};
}  // namespace

struct NodeFibers::State {
  std::vector<ctx::fiber> fibers;
  std::vector<Stack> stacks;         // by node
  ctx::fiber scheduler;              // inside a body: where it returns to when it waits
  Stack scheduler_stack;
  std::deque<std::size_t> runnable;  // nodes to resume, in order
  std::vector<std::size_t> waiter;   // by flow id: the node waiting for it, or kNobody
  std::vector<std::exception_ptr> failures;
  std::size_t current = 0;
  std::size_t finished = 0;
};

void NodeFibers::run() {
  State s;
  state_ = &s;
  struct Detach {
    NodeFibers& self;
    ~Detach() { self.state_ = nullptr; }
  } detach{*this};
  // Leaving by an exception (the loop's own), fibers not finished unwind on their own stacks (Boost
  // resumes each with forced_unwind), switches told to ASan as every other one.
  struct Unwind {
    State& s;
    ~Unwind() {
      for (std::size_t i = 0; i < s.fibers.size(); ++i) {
        if (!s.fibers[i]) continue;
        void* fake_stack = nullptr;
        switching_to(&fake_stack, s.stacks[i]);
        s.fibers[i] = ctx::fiber();
        switched(fake_stack);
      }
    }
  } unwind{s};
  s.failures.resize(bodies_.size());
  s.stacks.resize(bodies_.size());
  for (std::size_t i = 0; i < bodies_.size(); ++i) {
    s.fibers.emplace_back(std::allocator_arg, NotedStack(s.stacks[i]),
                          [this, &s, i](ctx::fiber&& scheduler) {
                            switched(nullptr, &s.scheduler_stack);
                            s.scheduler = std::move(scheduler);
                            try {
                              bodies_[i]();
                            } catch (const ctx::detail::forced_unwind&) {
                              // A fiber destroyed unfinished (see Unwind) unwinds with this: let it
                              // through, back to run()'s stack.
                              switching_to(nullptr, s.scheduler_stack);
                              throw;
                            } catch (...) {
                              s.failures[i] = std::current_exception();
                            }
                            ++s.finished;
                            switching_to(nullptr, s.scheduler_stack);  // for good: no fake stack to keep
                            return std::move(s.scheduler);
                          });
    s.runnable.push_back(i);
  }
  for (;;) {
    while (!s.runnable.empty()) {
      s.current = s.runnable.front();
      s.runnable.pop_front();
      void* fake_stack = nullptr;
      switching_to(&fake_stack, s.stacks[s.current]);
      s.fibers[s.current] = std::move(s.fibers[s.current]).resume();
      switched(fake_stack);
    }
    if (s.finished == bodies_.size()) break;
    if (fabric_.idle()) throw std::logic_error("nodes wait, but no transfer is in flight");
    const Fabric::FlowId flow = fabric_.advance();
    if (flow < s.waiter.size() && s.waiter[flow] != kNobody) {
      s.runnable.push_back(s.waiter[flow]);
      s.waiter[flow] = kNobody;
    }
  }
  for (const auto& failure : s.failures)
    if (failure) std::rethrow_exception(failure);
}

double NodeFibers::wait(Fabric::FlowId flow) {
  State& s = *state_;
  if (!fabric_.ended(flow)) {
    if (s.waiter.size() <= flow) s.waiter.resize(flow + 1, kNobody);
    s.waiter[flow] = s.current;
    void* fake_stack = nullptr;
    switching_to(&fake_stack, s.scheduler_stack);
    try {
      s.scheduler = std::move(s.scheduler).resume();
    } catch (const ctx::detail::forced_unwind&) {  // back on this stack, to unwind it
      switched(fake_stack);
      throw;
    }
    switched(fake_stack);
  }
  return fabric_.finish(flow);
}

}  // namespace rmai::sim
