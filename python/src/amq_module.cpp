// The `amq._amq` extension module: amq's runner, quantizer and perplexity for
// Python (pybind11). The pure-Python package amq (python/amq/__init__.py) wraps it
// and adds torch tensors; python/amq/torch.py has the drop-in nn modules.
//
// Inputs reach the runner without a copy: a C-contiguous, aligned float32 (or
// int64 tokens) numpy array is handed to amq::Session as it is, and anything else
// (another dtype, rank or size, a strided view) is refused with an exception
// naming what was expected; outputs are numpy arrays the runner writes into. The
// GIL is released while the kernels run, so sessions in several Python threads run
// at the same time. A Model is immutable and shared; a Session refuses a call from
// a second thread while another thread is inside one of its calls.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "amq/evaluate.h"
#include "amq/kernels.h"
#include "amq/model.h"
#include "amq/quantize_model.h"
#include "amq/rnn.h"

namespace py = pybind11;

namespace {

using amq::ModelFile;
using amq::RnnShape;

// A bad argument from Python: raised as amq.ArgumentError (a ValueError).
struct ArgumentError : std::invalid_argument {
    using std::invalid_argument::invalid_argument;
};

// The address of the last input array handed to the runner by this thread: the
// tests check that a contiguous float32 array arrives without a copy.
thread_local const void *g_last_input = nullptr;

std::string shape_text(const py::array &a) {
    std::string s = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
    return s + (a.ndim() == 1 ? ",)" : ")");
}

// One expected dimension of an input: its size (-1 = any) and its name.
struct Dim {
    py::ssize_t size;
    const char *name;
};

std::string dims_text(const std::vector<Dim> &dims) {
    std::string s = "[";
    for (size_t i = 0; i < dims.size(); ++i) {
        s += i ? ", " : "";
        s += dims[i].size < 0 ? dims[i].name
                              : std::string(dims[i].name) + "=" + std::to_string(dims[i].size);
    }
    return s + "]";
}

// `obj` as a numpy array of T with `dims`, C-contiguous and aligned, so that its
// data is passed on as it is; throws ArgumentError naming `what` and what was
// expected otherwise.
template <class T>
py::array checked_array(const py::handle &obj, const std::string &what,
                        const std::vector<Dim> &dims) {
    const std::string want = std::string(py::str(py::dtype::of<T>().attr("name"))) +
                             " array " + dims_text(dims);
    if (!py::isinstance<py::array>(obj))
        throw ArgumentError(what + ": got a " + std::string(py::str(obj.get_type().attr("__name__"))) +
                            ", expected a numpy " + want);
    py::array a = py::reinterpret_borrow<py::array>(obj);
    if (!a.dtype().is(py::dtype::of<T>()))
        throw ArgumentError(what + ": dtype " + std::string(py::str(a.dtype())) + ", expected " +
                            want);
    if (a.ndim() != py::ssize_t(dims.size()))
        throw ArgumentError(what + ": " + std::to_string(a.ndim()) + " dimensions " +
                            shape_text(a) + ", expected " + std::to_string(dims.size()) + ": " +
                            want);
    for (size_t i = 0; i < dims.size(); ++i)
        if (dims[i].size >= 0 && a.shape(py::ssize_t(i)) != dims[i].size)
            throw ArgumentError(what + ": shape " + shape_text(a) + ", expected " + want + " (" +
                                dims[i].name + " is " + std::to_string(dims[i].size) + ")");
    const int flags = py::detail::array_proxy(a.ptr())->flags;
    if (!(flags & py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_))
        throw ArgumentError(what + ": not C-contiguous (a strided view, e.g. a transpose or a "
                                   "slice), expected a C-contiguous " +
                            want + "; numpy.ascontiguousarray() or tensor.contiguous() copies it");
    if (!(flags & py::detail::npy_api::NPY_ARRAY_ALIGNED_))
        throw ArgumentError(what + ": data not aligned to its dtype, expected an aligned " + want);
    return a;
}

template <class T>
py::array_t<T> new_array(std::vector<py::ssize_t> shape) {
    return py::array_t<T>(std::move(shape));
}

// A model with the file it came from (kept for save() and the metadata).
class PyModel {
public:
    PyModel(ModelFile file, std::string label)
        : file_(std::make_shared<const ModelFile>(std::move(file))),
          model_(amq::Model::from_file(*file_)),
          label_(std::move(label)) {}

    const ModelFile &file() const { return *file_; }
    const std::shared_ptr<const amq::Model> &model() const { return model_; }
    const RnnShape &shape() const { return model_->shape(); }
    const std::string &label() const { return label_; }

private:
    std::shared_ptr<const ModelFile> file_;
    std::shared_ptr<const amq::Model> model_;
    std::string label_;
};

class PySession {
public:
    PySession(std::shared_ptr<PyModel> model, size_t batch, amq::StepKernels kernels)
        : model_(std::move(model)), session_(model_->model(), batch, kernels) {}

    // Whether a layer direction runs its step on a fused kernel ("run" or "step").
    bool fused(const std::string &call, int layer, int direction) const {
        if (call != "run" && call != "step")
            throw ArgumentError("fused: call='" + call + "', expected 'run' or 'step'");
        return session_.fused(call == "run" ? amq::StepCall::run : amq::StepCall::step, layer,
                              direction);
    }

    size_t batch() const { return session_.batch(); }
    const std::shared_ptr<PyModel> &model() const { return model_; }

    // Marks the session in use for the life of a call; a second thread entering
    // meanwhile gets an amq.Error instead of a data race.
    class Use {
    public:
        explicit Use(PySession &s) : s_(s) {
            if (s_.busy_.exchange(true))
                throw amq::Error(
                    "amq.Session: in use by another thread; a session belongs to one thread at a "
                    "time (give each thread its own Model.session(), the Model is shared)");
        }
        ~Use() { s_.busy_ = false; }
        Use(const Use &) = delete;
        Use &operator=(const Use &) = delete;

    private:
        PySession &s_;
    };

    // The steady-clock times (ns) at which the last kernel call of this session
    // started and ended, with the GIL released: the tests check that sessions in
    // two threads overlap.
    std::pair<int64_t, int64_t> last_call_ns() const { return {start_ns_, end_ns_}; }

    // Runs f with the GIL released, recording its times.
    template <class F>
    void released(F &&f) {
        py::gil_scoped_release nogil;
        start_ns_ = now_ns();
        f();
        end_ns_ = now_ns();
    }

    py::array run(const py::handle &x_obj, const py::handle &lengths_obj) {
        Use use(*this);
        const RnnShape &s = model_->shape();
        if (s.lm())
            throw ArgumentError("Session.run: " + model_->label() +
                                " is a language model: give token ids to run_tokens()");
        const py::ssize_t B = py::ssize_t(batch());
        py::array x = checked_array<float>(
            x_obj, "x", {{-1, "T"}, {B, "batch"}, {py::ssize_t(s.input_size), "input_size"}});
        const size_t T = size_t(x.shape(0));
        const int64_t *lengths = nullptr;
        py::array len;
        if (!lengths_obj.is_none()) {
            len = checked_array<int64_t>(lengths_obj, "lengths", {{B, "batch"}});
            lengths = static_cast<const int64_t *>(len.data());
        }
        auto out = new_array<float>({py::ssize_t(T), B, py::ssize_t(s.output_size())});
        const float *xp = static_cast<const float *>(x.data());
        float *op = out.mutable_data();
        g_last_input = xp;
        released([&] { session_.run(xp, T, op, lengths); });
        return std::move(out);
    }

    py::tuple run_tokens(const py::handle &tokens_obj) {
        Use use(*this);
        const RnnShape &s = model_->shape();
        need_lm("run_tokens");
        const py::ssize_t B = py::ssize_t(batch());
        py::array tok = checked_array<int64_t>(tokens_obj, "tokens", {{-1, "T"}, {B, "batch"}});
        const size_t T = size_t(tok.shape(0));
        auto h = new_array<float>({py::ssize_t(T), B, py::ssize_t(s.output_size())});
        auto logits = new_array<float>({py::ssize_t(T), B, py::ssize_t(s.vocab_size)});
        const int64_t *tp = static_cast<const int64_t *>(tok.data());
        float *hp = h.mutable_data(), *lp = logits.mutable_data();
        g_last_input = tp;
        released([&] { session_.run_tokens(tp, T, hp, lp); });
        return py::make_tuple(h, logits);
    }

    py::array step(const py::handle &x_obj) {
        Use use(*this);
        const RnnShape &s = model_->shape();
        if (s.lm())
            throw ArgumentError("Session.step: " + model_->label() +
                                " is a language model: give token ids to step_tokens()");
        const py::ssize_t B = py::ssize_t(batch());
        py::array x = checked_array<float>(
            x_obj, "x", {{B, "batch"}, {py::ssize_t(s.input_size), "input_size"}});
        auto h = new_array<float>({B, py::ssize_t(s.h_size())});
        const float *xp = static_cast<const float *>(x.data());
        float *hp = h.mutable_data();
        g_last_input = xp;
        released([&] {
            const float *r = session_.step(xp);
            std::memcpy(hp, r, size_t(B) * s.h_size() * sizeof(float));
        });
        return std::move(h);
    }

    py::tuple step_tokens(const py::handle &tokens_obj) {
        Use use(*this);
        const RnnShape &s = model_->shape();
        need_lm("step_tokens");
        const py::ssize_t B = py::ssize_t(batch());
        py::array tok = checked_array<int64_t>(tokens_obj, "tokens", {{B, "batch"}});
        auto h = new_array<float>({B, py::ssize_t(s.h_size())});
        auto logits = new_array<float>({B, py::ssize_t(s.vocab_size)});
        const int64_t *tp = static_cast<const int64_t *>(tok.data());
        float *hp = h.mutable_data(), *lp = logits.mutable_data();
        g_last_input = tp;
        released([&] {
            const float *r = session_.step_tokens(tp);
            std::memcpy(hp, r, size_t(B) * s.h_size() * sizeof(float));
            std::memcpy(lp, session_.logits(), size_t(B) * s.vocab_size * sizeof(float));
        });
        return py::make_tuple(h, logits);
    }

    void reset() {
        Use use(*this);
        session_.reset();
    }

    // h0 [L*D, B, h_size] and c0 [L*D, B, hidden_size] (LSTM; None = zeros).
    void set_state(const py::handle &h0_obj, const py::handle &c0_obj) {
        Use use(*this);
        const RnnShape &s = model_->shape();
        const float *h0 = nullptr, *c0 = nullptr;
        py::array h0a, c0a;
        if (!h0_obj.is_none()) {
            h0a = checked_array<float>(h0_obj, "h0", state_dims(s.h_size(), "h_size"));
            h0 = static_cast<const float *>(h0a.data());
        }
        if (!c0_obj.is_none()) {
            if (s.arch != amq::Arch::lstm)
                throw ArgumentError("c0: " + model_->label() + " is a GRU, which has no cell state");
            c0a = checked_array<float>(c0_obj, "c0", state_dims(s.hidden_size, "hidden_size"));
            c0 = static_cast<const float *>(c0a.data());
        }
        session_.set_state(h0, c0);
    }

    // (h_n [L*D, B, h_size], c_n [L*D, B, hidden_size] or None for a GRU).
    py::tuple get_state() {
        Use use(*this);
        const RnnShape &s = model_->shape();
        const py::ssize_t LD = py::ssize_t(s.layers) * s.directions(), B = py::ssize_t(batch());
        auto h = new_array<float>({LD, B, py::ssize_t(s.h_size())});
        if (s.arch != amq::Arch::lstm) {
            session_.get_state(h.mutable_data(), nullptr);
            return py::make_tuple(h, py::none());
        }
        auto c = new_array<float>({LD, B, py::ssize_t(s.hidden_size)});
        session_.get_state(h.mutable_data(), c.mutable_data());
        return py::make_tuple(h, c);
    }

private:
    static int64_t now_ns() {
        return std::chrono::duration_cast<std::chrono::nanoseconds>(
                   std::chrono::steady_clock::now().time_since_epoch())
            .count();
    }
    void need_lm(const char *what) const {
        if (!model_->shape().lm())
            throw ArgumentError(std::string("Session.") + what + ": " + model_->label() +
                                " is not a language model (no embedding): give float inputs");
    }
    std::vector<Dim> state_dims(size_t width, const char *name) const {
        const RnnShape &s = model_->shape();
        return {{py::ssize_t(s.layers) * s.directions(), "layers*directions"},
                {py::ssize_t(batch()), "batch"},
                {py::ssize_t(width), name}};
    }

    std::shared_ptr<PyModel> model_;
    amq::Session session_;
    std::atomic<bool> busy_{false};
    int64_t start_ns_ = 0, end_ns_ = 0;
};

std::shared_ptr<PyModel> load(const std::string &path) {
    ModelFile f;
    {
        py::gil_scoped_release nogil;
        f = amq::load_model(path);
    }
    return std::make_shared<PyModel>(std::move(f), path);
}

// A float model from tensors (name -> float32 array) and metadata, checked as a
// file would be: `label` names it in messages.
std::shared_ptr<PyModel> from_tensors(const py::dict &tensors,
                                      const std::map<std::string, std::string> &metadata,
                                      const std::string &label) {
    amq::st::Writer w;
    for (const auto &[key, value] : metadata) w.set_metadata(key, value);
    for (const auto &[name_obj, value] : tensors) {
        const std::string name = py::str(name_obj), what = label + ": tensor '" + name + "'";
        if (!py::isinstance<py::array>(value))
            throw ArgumentError(what + ": expected a numpy float32 array");
        const size_t ndim = size_t(py::reinterpret_borrow<py::array>(value).ndim());
        py::array a = checked_array<float>(value, what, std::vector<Dim>(ndim, Dim{-1, "d"}));
        std::vector<int64_t> shape(a.shape(), a.shape() + a.ndim());
        w.add(name, amq::st::DType::F32, shape, a.data(), size_t(a.nbytes()));
    }
    std::vector<uint8_t> bytes = w.bytes();
    ModelFile f;
    {
        py::gil_scoped_release nogil;
        f = amq::load_model_from_bytes(std::move(bytes), label);
    }
    return std::make_shared<PyModel>(std::move(f), label);
}

std::shared_ptr<PyModel> quantize(const PyModel &m, int wbits, int abits,
                                  const std::string &method, int iters, const std::string &init,
                                  const std::string &range, const std::string &act_method,
                                  int act_iters, bool lm_parts, int threads) {
    if (m.file().quantized())
        throw ArgumentError(m.label() + " is already a quantized model (W" +
                            std::to_string(m.file().k_w) + "A" + std::to_string(m.file().k_a) +
                            "); quantize its float model");
    amq::ModelQuantizeOptions o;
    o.weights.method = amq::parse_method(method);
    o.weights.bits = wbits;
    o.weights.iters = iters;
    o.weights.init = amq::parse_init(init);
    o.weights.range = amq::parse_range(range);
    o.weights.threads = threads;
    if (!amq::method_supports_bits(o.weights.method, wbits))
        throw ArgumentError("wbits=" + std::to_string(wbits) + ": method " + method +
                            (o.weights.method == amq::Method::ternary ? " stores 2 planes, expected 2"
                                                                      : " expects 1..4"));
    if (abits < 1 || abits > 4)
        throw ArgumentError("abits=" + std::to_string(abits) + ": expected 1..4");
    if (act_method != "alternating" && act_method != "greedy")
        throw ArgumentError("act_method='" + act_method + "': expected 'alternating' or 'greedy'");
    if (act_iters < 0 || act_iters > 3)
        throw ArgumentError("act_iters=" + std::to_string(act_iters) + ": expected 0..3");
    o.k_a = abits;
    o.act_method = act_method;
    o.act_iters = act_iters;
    o.lm_parts = lm_parts;
    ModelFile q;
    {
        py::gil_scoped_release nogil;
        q = amq::quantize_model(m.file(), o);
    }
    q.metadata["quantized_from"] = m.label();
    return std::make_shared<PyModel>(std::move(q), m.label() + " (W" + std::to_string(wbits) +
                                                       "A" + std::to_string(abits) + ")");
}

py::dict evaluate(const PyModel &m, const std::string &text, size_t limit) {
    amq::Perplexity p;
    {
        py::gil_scoped_release nogil;
        p = amq::evaluate_text(m.model(), m.label(), text, limit);
    }
    py::dict d;
    d["perplexity"] = p.perplexity;
    d["tokens"] = p.tokens;
    d["seconds"] = p.seconds;
    d["tokens_per_second"] = p.seconds > 0 ? double(p.tokens) / p.seconds : 0.0;
    return d;
}

// amq.Error (RuntimeError), amq.FormatError (amq.Error, ValueError) and
// amq.ArgumentError (amq.Error, ValueError), with the C++ message.
void register_errors(py::module_ &m) {
    static PyObject *error = nullptr, *format_error = nullptr, *argument_error = nullptr;
    error = PyErr_NewExceptionWithDoc(
        "amq.Error", "An error of amq (a file, an argument or the runner), with its message.",
        PyExc_RuntimeError, nullptr);
    py::tuple format_bases = py::make_tuple(py::handle(error), py::handle(PyExc_ValueError));
    format_error = PyErr_NewExceptionWithDoc(
        "amq.FormatError", "A model or inputs file that breaks the format (names file and tensor).",
        format_bases.ptr(), nullptr);
    argument_error = PyErr_NewExceptionWithDoc(
        "amq.ArgumentError",
        "A bad argument: dtype, rank, size or layout of an array, an option value.",
        format_bases.ptr(), nullptr);
    m.attr("Error") = py::handle(error);
    m.attr("FormatError") = py::handle(format_error);
    m.attr("ArgumentError") = py::handle(argument_error);
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const amq::st::FormatError &e) {
            PyErr_SetString(format_error, e.what());
        } catch (const std::invalid_argument &e) {
            PyErr_SetString(argument_error, e.what());
        } catch (const amq::Error &e) {
            PyErr_SetString(error, e.what());
        } catch (const std::bad_alloc &) {
            throw;  // pybind11's MemoryError
        } catch (const std::runtime_error &e) {
            PyErr_SetString(error, e.what());
        }
    });
}

}  // namespace

PYBIND11_MODULE(_amq, m) {
    m.doc() = "amq: multi-bit quantized LSTM/GRU inference on CPUs (the C++ extension)";
    register_errors(m);

    py::class_<PyModel, std::shared_ptr<PyModel>>(m, "Model")
        .def_property_readonly("label", &PyModel::label)
        .def_property_readonly("arch",
                               [](const PyModel &p) { return amq::arch_name(p.shape().arch); })
        .def_property_readonly("layers", [](const PyModel &p) { return p.shape().layers; })
        .def_property_readonly("input_size", [](const PyModel &p) { return p.shape().input_size; })
        .def_property_readonly("hidden_size",
                               [](const PyModel &p) { return p.shape().hidden_size; })
        .def_property_readonly("proj_size", [](const PyModel &p) { return p.shape().proj_size; })
        .def_property_readonly("bidirectional",
                               [](const PyModel &p) { return p.shape().bidirectional; })
        .def_property_readonly("directions", [](const PyModel &p) { return p.shape().directions(); })
        .def_property_readonly("h_size", [](const PyModel &p) { return p.shape().h_size(); })
        .def_property_readonly("output_size",
                               [](const PyModel &p) { return p.shape().output_size(); })
        .def_property_readonly("bias", [](const PyModel &p) { return p.shape().bias; })
        .def_property_readonly("vocab_size", [](const PyModel &p) { return p.shape().vocab_size; })
        .def_property_readonly("tied", [](const PyModel &p) { return p.shape().tied; })
        .def_property_readonly("quantized", [](const PyModel &p) { return p.file().quantized(); })
        .def_property_readonly("k_w", [](const PyModel &p) { return p.file().k_w; })
        .def_property_readonly("k_a", [](const PyModel &p) { return p.file().k_a; })
        .def_property_readonly("method", [](const PyModel &p) { return p.file().method; })
        .def_property_readonly("iters", [](const PyModel &p) { return p.file().iters; })
        .def_property_readonly("act_method", [](const PyModel &p) { return p.file().act_method; })
        .def_property_readonly("act_iters", [](const PyModel &p) { return p.file().act_iters; })
        .def_property_readonly("vocab", [](const PyModel &p) { return p.file().vocab; })
        .def_property_readonly("metadata", [](const PyModel &p) { return p.file().metadata; })
        .def_property_readonly("weight_bytes",
                               [](const PyModel &p) { return p.model()->weight_bytes(); })
        .def("save",
             [](const PyModel &p, const std::string &path) {
                 py::gil_scoped_release nogil;
                 amq::save_model(path, p.file());
             },
             py::arg("path"), "Writes the model (.amq when quantized, else a float .safetensors)")
        .def("session",
             [](const std::shared_ptr<PyModel> &p, size_t batch, const std::string &kernels) {
                 if (batch == 0) throw ArgumentError("batch=0: expected at least 1");
                 amq::StepKernels k = amq::StepKernels::chosen;
                 if (kernels == "fused") k = amq::StepKernels::fused;
                 else if (kernels == "separate") k = amq::StepKernels::separate;
                 else if (kernels != "chosen")
                     throw ArgumentError("step_kernels='" + kernels +
                                         "': expected 'chosen', 'fused' or 'separate'");
                 return std::make_shared<PySession>(p, batch, k);
             },
             py::arg("batch") = 1, py::arg("step_kernels") = "chosen");

    py::class_<PySession, std::shared_ptr<PySession>>(m, "Session")
        .def_property_readonly("batch", &PySession::batch)
        .def_property_readonly("model", &PySession::model)
        .def("run", &PySession::run, py::arg("x"), py::arg("lengths") = py::none())
        .def("run_tokens", &PySession::run_tokens, py::arg("tokens"))
        .def("step", &PySession::step, py::arg("x"))
        .def("step_tokens", &PySession::step_tokens, py::arg("tokens"))
        .def("reset", &PySession::reset)
        .def("set_state", &PySession::set_state, py::arg("h0") = py::none(),
             py::arg("c0") = py::none())
        .def("get_state", &PySession::get_state)
        .def("fused", &PySession::fused, py::arg("call"), py::arg("layer"), py::arg("direction"))
        .def("_last_call_ns", &PySession::last_call_ns);

    m.def("load", &load, py::arg("path"));
    m.def("from_tensors", &from_tensors, py::arg("tensors"), py::arg("metadata"),
          py::arg("label"));
    m.def("quantize", &quantize, py::arg("model"), py::arg("wbits"), py::arg("abits"),
          py::arg("method"), py::arg("iters"), py::arg("init"), py::arg("range"),
          py::arg("act_method"), py::arg("act_iters"), py::arg("lm_parts"), py::arg("threads"));
    m.def("eval", &evaluate, py::arg("model"), py::arg("text"), py::arg("limit") = 0);
    m.def(
        "set_num_threads",
        [](int n) {
            if (n < 1) throw ArgumentError("set_num_threads: n=" + std::to_string(n) +
                                           ", expected at least 1");
            amq::set_num_threads(n);
        },
        py::arg("n"));
    m.def("active_isa", [] { return std::string(amq::isa_name(amq::active_isa())); });
    m.def("halide_version", [] { return std::string(amq::halide_version()); });
    m.def("_last_input_address",
          [] { return reinterpret_cast<uintptr_t>(g_last_input); },
          "The data address of the last input array this thread handed to the runner");
}
