#include "amq/autotune/evaluate.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "amq/autotune/autoschedulers.h"
#include "amq/autotune/isolate.h"
#include "amq/thread_pool.h"

namespace amq::tune {

namespace {

constexpr std::pair<ErrorKind, const char *> kKindNames[] = {
    {ErrorKind::ok, "ok"},
    {ErrorKind::compile_error, "compile_error"},
    {ErrorKind::runtime_error, "runtime_error"},
    {ErrorKind::wrong_result, "wrong_result"},
    {ErrorKind::crash, "crash"},
    {ErrorKind::timeout, "timeout"}};

// The last non-empty line of a child's stderr, shortened: the message of an
// abort or a failed assertion.
std::string last_line(const std::string &text) {
    const size_t end = text.find_last_not_of("\n\r\t ");
    if (end == std::string::npos) return "";
    const size_t nl = text.rfind('\n', end);
    const size_t begin = nl == std::string::npos ? 0 : nl + 1;
    const std::string line = text.substr(begin, end + 1 - begin);
    return line.size() > 300 ? line.substr(0, 300) + "..." : line;
}

std::string shorten(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s.size() > 600 ? s.substr(0, 600) + "..." : s;
}

nlohmann::json timing_json(const Timing &t) {
    return {{"median_us", t.median_us}, {"spread", t.spread}, {"rounds", t.rounds}};
}

Timing timing_from(const nlohmann::json &j) {
    return {j.at("median_us").get<double>(), j.at("spread").get<double>(),
            j.at("rounds").get<int>()};
}

// One candidate inside the child: compiled, checked, ready to time.
struct Prepared {
    ErrorKind kind = ErrorKind::ok;
    std::string error;
    double compile_ms = 0;
    std::unique_ptr<JitKernel> kernel;
    std::unique_ptr<Invocation> invocation;  // the problem's shape, for timing
    JitKernel::Call call;
};

void fail(Prepared &p, ErrorKind kind, const std::string &error) {
    p.kind = kind;
    p.error = shorten(error);
}

// Fault::crash, illegal_instruction: the child dies of the signal, as it does
// when a bad candidate faults in a build without sanitizers. In an
// AddressSanitizer build (cmake/amqSanitize.cmake) ASan's SIGSEGV handler
// would report and exit with a status instead, so the signal's default action
// is put back first (a no-op in other builds).
void die_of(int sig) {
    signal(sig, SIG_DFL);
    raise(sig);
}

// Runs the kernel on `inv` once and checks its output. Faults that happen
// "instead of the kernel call" happen here.
void run_and_check(Prepared &p, Invocation &inv, const JitKernel::Call &call, Fault fault) {
    inv.poison_output();
    if (fault == Fault::crash) die_of(SIGSEGV);
    if (fault == Fault::illegal_instruction) die_of(SIGILL);
    if (fault == Fault::hang)
        for (;;) pause();
    if (int rc = call()) {
        const std::string msg = last_runtime_error();
        return fail(p, ErrorKind::runtime_error,
                    "error " + std::to_string(rc) + (msg.empty() ? "" : ": " + msg));
    }
    if (fault == Fault::wrong_result) {
        halide_buffer_t *out = inv.output();
        std::memset(out->host, 0x7f, out->type.bytes());  // the first element changed
    }
    const std::string bad = inv.check();
    if (!bad.empty()) fail(p, ErrorKind::wrong_result, bad);
}

void prepare(const TunablePipeline &pipeline, const Candidate &c, const Halide::Target &target,
             ChildChannel &channel, const std::string &tag, Prepared &p) {
    channel.stage("compile " + tag);
    try {
        Halide::Pipeline hp =
            c.autoscheduler.empty() ? pipeline.build(c.knobs) : autoschedule(pipeline, c, target);
        if (c.fault == Fault::compile_error)
            hp.outputs()[0].vectorize(Halide::Var("amq_no_such_var"), 8);
        p.kernel = std::make_unique<JitKernel>(hp, target);
        p.compile_ms = p.kernel->compile_ms();
    } catch (const Halide::Error &e) {
        return fail(p, ErrorKind::compile_error, e.what());
    } catch (const std::exception &e) {
        return fail(p, ErrorKind::compile_error, e.what());
    }
    channel.stage("verify " + tag);
    for (bool edge : {true, false}) {
        if (edge && !c.check_edge_shape) continue;
        auto inv = pipeline.make_invocation(c.knobs, edge);
        JitKernel::Call call = p.kernel->bind(*inv);
        run_and_check(p, *inv, call, c.fault);
        if (p.kind != ErrorKind::ok) return;
        if (!edge) {
            p.invocation = std::move(inv);
            p.call = call;
        }
    }
}

// The child's work: every candidate prepared, then all timed with the baseline.
void child_main(const TunablePipeline &pipeline, const Knobs &baseline_knobs,
                const JitKernel &baseline, const std::vector<Candidate> &candidates,
                const Halide::Target &target, const TimingOptions &timing, ChildChannel &channel) {
    pool::set_threads(pipeline.problem().threads);  // amq's pool, as the runtime's kernels
    std::vector<Prepared> prepared(candidates.size());
    for (size_t i = 0; i < candidates.size(); ++i)
        prepare(pipeline, candidates[i], target, channel, std::to_string(i), prepared[i]);

    channel.stage("verify baseline");
    auto base_inv = pipeline.make_invocation(baseline_knobs, false);
    JitKernel::Call base_call = baseline.bind(*base_inv);
    Prepared base;
    run_and_check(base, *base_inv, base_call, Fault::none);
    if (base.kind != ErrorKind::ok)
        throw std::runtime_error("the hand defaults failed their own check: " + base.error);

    channel.stage("time");
    // A kernel's error status throws, which stops the timing.
    auto checked = [](JitKernel::Call call, Invocation *inv) {
        return timing::Candidate{[call, inv] {
            if (int rc = call()) throw std::runtime_error("kernel returned error " + std::to_string(rc));
            inv->finish();
        }};
    };
    std::vector<timing::Candidate> fns = {checked(base_call, base_inv.get())};
    std::vector<size_t> slot(prepared.size(), 0);  // index in fns of each timed candidate
    for (size_t i = 0; i < prepared.size(); ++i)
        if (prepared[i].kind == ErrorKind::ok) {
            slot[i] = fns.size();
            fns.push_back(checked(prepared[i].call, prepared[i].invocation.get()));
        }
    std::vector<Timing> t;
    try {
        t = timing::time_interleaved(fns, timing);
    } catch (const std::exception &e) {
        const std::string msg = last_runtime_error();
        for (auto &p : prepared)
            if (p.kind == ErrorKind::ok)
                fail(p, ErrorKind::runtime_error,
                     std::string("while timing: ") + e.what() + (msg.empty() ? "" : ": " + msg));
        t.assign(fns.size(), Timing{});
    }
    nlohmann::json out = {{"baseline", timing_json(t[0])}, {"candidates", nlohmann::json::array()}};
    for (size_t i = 0; i < prepared.size(); ++i) {
        const Prepared &p = prepared[i];
        nlohmann::json c = {
            {"kind", kind_name(p.kind)}, {"error", p.error}, {"compile_ms", p.compile_ms}};
        if (p.kind == ErrorKind::ok) c["timing"] = timing_json(t[slot[i]]);
        out["candidates"].push_back(c);
    }
    channel.result(out.dump());
}

// Every candidate failed the same way: the child died or said nothing.
std::vector<Measurement> all_failed(size_t n, const ChildOutcome &o) {
    Measurement m;
    if (o.end == ChildOutcome::End::timed_out)
        m.kind = ErrorKind::timeout;
    else if (o.stage.rfind("compile", 0) == 0)
        m.kind = ErrorKind::compile_error;  // the compiler itself died
    else
        m.kind = ErrorKind::crash;
    m.error = o.describe();
    const std::string tail = last_line(o.stderr_tail);
    if (!tail.empty()) m.error += ": " + tail;
    m.seconds = o.seconds;
    return std::vector<Measurement>(n, m);
}

}  // namespace

const char *kind_name(ErrorKind kind) {
    for (const auto &[k, name] : kKindNames)
        if (k == kind) return name;
    return "?";
}

bool parse_kind(const std::string &name, ErrorKind &kind) {
    for (const auto &[k, n] : kKindNames)
        if (name == n) {
            kind = k;
            return true;
        }
    return false;
}

std::string Candidate::str() const {
    if (autoscheduler.empty()) return knobs_str(knobs);
    return autoscheduler + " " + knobs_str(knobs) +
           " parallelism=" + std::to_string(machine.parallelism) +
           " llc=" + std::to_string(machine.last_level_cache >> 10) + "K";
}

Evaluator::Evaluator(const TunablePipeline &pipeline, EvalOptions options)
    : pipeline_(pipeline), options_(std::move(options)), baseline_knobs_(pipeline.defaults()) {
    baseline_ = std::make_unique<JitKernel>(pipeline_.build(baseline_knobs_), options_.target);
}

Measurement Evaluator::evaluate(const Candidate &candidate, const TimingOptions &timing) const {
    return evaluate_together({candidate}, timing)[0];
}

std::vector<Measurement> Evaluator::evaluate_together(const std::vector<Candidate> &candidates,
                                                      const TimingOptions &timing) const {
    const ChildOutcome o = run_isolated(
        [&](ChildChannel &channel) {
            child_main(pipeline_, baseline_knobs_, *baseline_, candidates, options_.target, timing,
                       channel);
        },
        options_.timeout_seconds);
    // A sanitizer's report (sanitizer builds) fails the whole evaluation instead
    // of being recorded as a crashed candidate, where it would go unseen.
    if (o.sanitizer_report)
        throw std::runtime_error("the evaluation child " + o.describe() + ":\n" + o.stderr_tail);
    if (o.result.empty() || o.end != ChildOutcome::End::exited || o.exit_code != 0)
        return all_failed(candidates.size(), o);
    std::vector<Measurement> out;
    try {
        const nlohmann::json j = nlohmann::json::parse(o.result);
        const Timing base = timing_from(j.at("baseline"));
        for (const auto &c : j.at("candidates")) {
            Measurement m;
            if (!parse_kind(c.at("kind").get<std::string>(), m.kind))
                throw std::runtime_error("unknown kind");
            m.error = c.at("error").get<std::string>();
            m.compile_ms = c.at("compile_ms").get<double>();
            if (m.ok()) m.kernel = timing_from(c.at("timing"));
            m.baseline = base;
            m.seconds = o.seconds;
            out.push_back(m);
        }
    } catch (const std::exception &e) {
        throw std::runtime_error(std::string("the evaluation child sent a bad result (") +
                                 e.what() + "): " + o.result.substr(0, 200));
    }
    if (out.size() != candidates.size())
        throw std::runtime_error("the evaluation child sent " + std::to_string(out.size()) +
                                 " results for " + std::to_string(candidates.size()) +
                                 " candidates");
    return out;
}

}  // namespace amq::tune
