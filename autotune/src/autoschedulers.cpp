#include "amq/autotune/autoschedulers.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

namespace amq::tune {

const std::vector<std::string> &autoscheduler_names() {
    static const std::vector<std::string> names = {"Mullapudi2016", "Adams2019", "Li2018"};
    return names;
}

std::string autoscheduler_plugin(const std::string &name) {
    std::string path;
    if (name == "Mullapudi2016") path = AMQ_PLUGIN_MULLAPUDI2016;
    if (name == "Adams2019") path = AMQ_PLUGIN_ADAMS2019;
    if (name == "Li2018") path = AMQ_PLUGIN_LI2018;
    if (path.empty())
        throw std::invalid_argument("unknown autoscheduler '" + name +
                                    "' (expected Mullapudi2016, Adams2019 or Li2018)");
    if (const char *dir = std::getenv("AMQ_HALIDE_PLUGIN_DIR"); dir && *dir) {
        std::string lower = name;
        for (char &c : lower) c = char(std::tolower(static_cast<unsigned char>(c)));
        path = std::string(dir) + "/libautoschedule_" + lower + ".so";
    }
    return path;
}

Halide::Pipeline autoschedule(const TunablePipeline &pipeline, const Candidate &candidate,
                              const Halide::Target &target) {
    static std::mutex mu;
    static std::set<std::string> loaded;
    {
        std::lock_guard<std::mutex> lock(mu);
        if (loaded.insert(candidate.autoscheduler).second)
            Halide::load_plugin(autoscheduler_plugin(candidate.autoscheduler));
    }
    Halide::Pipeline p = pipeline.build_unscheduled(candidate.knobs);
    const MachineSetup &m = candidate.machine;
    p.auto_schedule(candidate.autoscheduler, target,
                    Halide::MachineParams(m.parallelism, m.last_level_cache, m.balance));
    return p;
}

std::vector<Candidate> autoscheduler_candidates(const TunablePipeline &pipeline,
                                                const std::string &name, const CpuIdentity &cpu) {
    autoscheduler_plugin(name);  // checks the name
    constexpr uint64_t kMiB = 1 << 20;
    std::vector<uint64_t> caches;
    caches.push_back(cpu.l2_bytes ? cpu.l2_bytes : kMiB);
    const uint64_t l3 = std::min<uint64_t>(cpu.l3_bytes, 32 * kMiB);
    if (l3 > caches[0]) caches.push_back(l3);
    // Parallelism: the kernel's threads, this machine's processors, and the
    // generic default of Halide's MachineParams (Adams2019's choices depend on it
    // even when the kernel then runs on one thread).
    std::vector<int> parallelism = {pipeline.problem().threads};
    for (int p : {int(std::thread::hardware_concurrency()), 16})
        if (p > 0 && std::find(parallelism.begin(), parallelism.end(), p) == parallelism.end())
            parallelism.push_back(p);
    std::vector<Candidate> out;
    for (const Knobs &layout : pipeline.autoscheduler_layouts())
        for (int par : parallelism)
            for (uint64_t llc : caches) {
                Candidate c;
                c.knobs = layout;
                c.autoscheduler = name;
                c.machine.parallelism = par;
                c.machine.last_level_cache = llc;
                c.check_edge_shape = false;
                out.push_back(c);
            }
    return out;
}

}  // namespace amq::tune
