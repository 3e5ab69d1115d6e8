// The `torch-cpp` runtime's process: loads one TorchScript file through libtorch, then
// answers `run` and `bench` commands (see wb_common.h). Inputs are fed to forward() in
// the order of the feed file (Python writes them in the signature's order).
// Usage: torch_caller MODEL.pt INTRA INTER
#include <ATen/Parallel.h>
#include <torch/script.h>

#include <cstdlib>

#include "wb_common.h"

namespace {

c10::ScalarType scalar_type(const std::string& dtype) {
  if (dtype == "float32") return torch::kFloat32;
  if (dtype == "float64") return torch::kFloat64;
  if (dtype == "float16") return torch::kFloat16;
  if (dtype == "int64") return torch::kInt64;
  if (dtype == "int32") return torch::kInt32;
  if (dtype == "int16") return torch::kInt16;
  if (dtype == "int8") return torch::kInt8;
  if (dtype == "uint8") return torch::kUInt8;
  if (dtype == "bool") return torch::kBool;
  throw std::runtime_error("unsupported dtype " + dtype);
}

std::string numpy_name(c10::ScalarType t) {
  switch (t) {
    case torch::kFloat32: return "float32";
    case torch::kFloat64: return "float64";
    case torch::kFloat16: return "float16";
    case torch::kInt64: return "int64";
    case torch::kInt32: return "int32";
    case torch::kInt16: return "int16";
    case torch::kInt8: return "int8";
    case torch::kUInt8: return "uint8";
    case torch::kBool: return "bool";
    default: throw std::runtime_error("an output has a dtype this caller cannot return");
  }
}

// Tensors over the host tensors' bytes (no copy): the host tensors must outlive them.
std::vector<c10::IValue> wrap(std::vector<wb::HostTensor>& feed) {
  std::vector<c10::IValue> values;
  for (auto& t : feed) {
    auto tensor = torch::from_blob(t.data.data(), t.shape, torch::TensorOptions().dtype(scalar_type(t.dtype)));
    if (static_cast<size_t>(tensor.nbytes()) != t.data.size())
      throw std::runtime_error("input " + t.name + " has the wrong number of bytes for its shape");
    values.emplace_back(tensor);
  }
  return values;
}

void flatten(const c10::IValue& value, std::vector<at::Tensor>& out) {
  if (value.isTensor()) out.push_back(value.toTensor());
  else if (value.isTuple()) for (const auto& v : value.toTupleRef().elements()) flatten(v, out);
  else if (value.isList()) for (const auto& v : value.toListRef()) flatten(v, out);
  else if (value.isGenericDict()) for (const auto& kv : value.toGenericDict()) flatten(kv.value(), out);
  else throw std::runtime_error("forward returned a value that is not a tensor, tuple, list or dict");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cout << "error\tusage: torch_caller MODEL INTRA INTER" << std::endl;
    return 2;
  }
  torch::jit::Module module;
  try {
    int intra = std::atoi(argv[2]), inter = std::atoi(argv[3]);
    if (inter > 0) at::set_num_interop_threads(inter);
    if (intra > 0) at::set_num_threads(intra);
    module = torch::jit::load(argv[1], torch::kCPU);
    module.eval();
  } catch (const std::exception& exc) {
    std::cout << "error\t" << wb::one_line(exc.what()) << std::endl;
    return 1;
  }
  std::cout << "ready" << std::endl;
  torch::InferenceMode guard;

  std::vector<std::vector<wb::HostTensor>> pool;
  std::vector<std::vector<c10::IValue>> values;
  wb::Caller caller;
  caller.load_pool = [&](const std::vector<std::string>& paths) {
    values.clear();
    pool.clear();
    for (const auto& p : paths) pool.push_back(wb::read_tensors(p));
    for (auto& feed : pool) values.push_back(wrap(feed));
    return pool.size();
  };
  caller.run_pool = [&](size_t i) { module.forward(values[i]); };
  caller.run_file = [&](const std::string& in, const std::string& out) {
    auto feed = wb::read_tensors(in);
    std::vector<at::Tensor> outputs;
    flatten(module.forward(wrap(feed)), outputs);
    std::vector<wb::HostTensor> host;
    for (size_t i = 0; i < outputs.size(); ++i) {
      auto t = outputs[i].contiguous().cpu();
      wb::HostTensor h;
      h.name = "output_" + std::to_string(i);
      h.dtype = numpy_name(t.scalar_type());
      h.shape.assign(t.sizes().begin(), t.sizes().end());
      auto bytes = static_cast<const char*>(t.data_ptr());
      h.data.assign(bytes, bytes + t.nbytes());
      host.push_back(std::move(h));
    }
    wb::write_tensors(out, host);
  };
  return wb::serve_commands(caller);
}
