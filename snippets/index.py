"""首页：构建这个网站的机器上运行的是什么。"""

# --8<-- [start:env]
import os
import platform

import torch

print("PyTorch 版本:", torch.__version__)
print("Python 版本:", platform.python_version())
print("CPU 架构:", platform.machine(), "| 指令集:", torch.backends.cpu.get_cpu_capability())
print("CPU 核数:", os.cpu_count())
print("CUDA 可用:", torch.cuda.is_available())
# --8<-- [end:env]
