"""第 5 章：原文代码的两个报错真实存在；修正后的程序在测试集上明显胜过“猜多数类”，损失确实下降。"""

import copy
import itertools

import torch

SNIPPET = "snippets/part1/ch05_hello.py"


def test_article_listing_raises_shape_error(run_snippet):
    err = run_snippet(SNIPPET).ns["shape_error"]
    assert isinstance(err, RuntimeError), (
        f"原文 x = torch.randn(10, 1) 应该引发 RuntimeError，实际得到 {err!r}"
    )
    assert "mat1 and mat2 shapes cannot be multiplied" in str(err)
    assert "10x1 and 10x1" in str(err)


def test_article_bce_on_raw_output_and_real_targets_fails(run_snippet):
    ns = run_snippet(SNIPPET).ns
    input_error, target_error = ns["input_error"], ns["target_error"]
    assert isinstance(input_error, RuntimeError), f"线性层原始输出进 BCELoss 应报错，实际 {input_error!r}"
    assert "all elements of input should be between 0 and 1" in str(input_error)
    assert isinstance(target_error, RuntimeError), f"torch.randn 目标进 BCELoss 应报错，实际 {target_error!r}"
    assert "all elements of target should be between 0 and 1" in str(target_error)
    # 勘误 2 的两句描述：线性层的原始输出里有负数；目标里既有负数也有大于 1 的数
    assert ns["output"].min().item() < 0
    assert ns["y"].min().item() < 0 < 1 < ns["y"].max().item()


def test_data_is_a_real_split(run_snippet):
    ns = run_snippet(SNIPPET).ns
    X_train, X_test, y_train = ns["X_train"], ns["X_test"], ns["y_train"]
    assert X_train.shape[1] == X_test.shape[1] == 10, "每个样本应有 10 个特征，和 nn.Linear(10, 1) 对得上"
    assert set(y_train.unique().tolist()) == {0.0, 1.0}, "二分类标签应只有 0 和 1"
    train_idx, test_idx = set(ns["train_idx"].tolist()), set(ns["test_idx"].tolist())
    assert not train_idx & test_idx, "训练集和测试集不能有重叠的样本"
    assert len(train_idx) + len(test_idx) == ns["num_samples"]
    # 页面说两个集合的正类比例不同，所以基线要用测试集自己的比例
    assert ns["y_train"].mean().item() != ns["y_test"].mean().item()


def test_training_loss_falls(run_snippet):
    ns = run_snippet(SNIPPET).ns
    train_losses, test_losses = ns["train_losses"], ns["test_losses"]
    assert len(train_losses) == len(test_losses) == ns["num_epochs"]
    assert train_losses[-1] < 0.5 * train_losses[0], (
        f"训练损失没有明显下降：{train_losses[0]:.3f} -> {train_losses[-1]:.3f}"
    )
    assert test_losses[-1] < 0.5 * test_losses[0], (
        f"测试损失没有明显下降：{test_losses[0]:.3f} -> {test_losses[-1]:.3f}"
    )
    # 页面说“逐轮下降”、两条曲线“几乎贴在一起”
    assert all(b < a for a, b in itertools.pairwise(train_losses)), "训练损失应逐轮下降"
    assert all(b < a for a, b in itertools.pairwise(test_losses)), "测试损失应逐轮下降"
    gap = max(abs(a - b) for a, b in zip(train_losses, test_losses, strict=True))
    assert gap < 0.05, f"训练损失与测试损失最多差 {gap:.3f}，不算“几乎贴在一起”"


def test_more_epochs_or_larger_lr_lower_the_loss(run_snippet):
    """5.4 第 3 点：最后一轮仍在下降，多训练几轮或把学习率调大，损失还能再降。"""
    ns = run_snippet(SNIPPET).ns
    X, y, final = ns["X_train"], ns["y_train"], ns["train_losses"][-1]
    criterion = torch.nn.BCEWithLogitsLoss()

    def train(model, lr, epochs):
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        for _ in range(epochs):
            optimizer.zero_grad()
            loss = criterion(model(X), y)
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            return criterion(model(X), y).item()

    longer = copy.deepcopy(ns["model"])  # 接着训练的是一份拷贝，不动页面上的模型
    assert train(longer, lr=0.1, epochs=100) < final - 0.01
    torch.manual_seed(1)
    start = ns["SimpleModel"]()
    same_lr, larger_lr = train(copy.deepcopy(start), 0.1, 100), train(copy.deepcopy(start), 0.3, 100)
    assert larger_lr < same_lr - 0.01, f"lr=0.3 的损失 {larger_lr:.4f} 应低于 lr=0.1 的 {same_lr:.4f}"


def test_accuracy_beats_majority_baseline(run_snippet):
    ns = run_snippet(SNIPPET).ns
    y_test = ns["y_test"]
    positive = y_test.mean().item()
    baseline = max(positive, 1 - positive)  # 永远猜多数类
    acc = ns["test_accuracy"]
    assert acc >= baseline + 0.15, f"测试准确率 {acc:.1%} 没有比多数类基线 {baseline:.1%} 高出 15 个百分点"
    # 重新算一遍准确率，确认打印的数字来自真正的预测
    with torch.no_grad():
        recomputed = ((ns["model"](ns["X_test"]) > 0).float() == y_test).float().mean().item()
    assert abs(recomputed - acc) < 1e-6
    # 页面说训练集和测试集的准确率“相差不大”
    assert abs(ns["train_accuracy"] - acc) < 0.05


def test_model_learns_the_hidden_rule(run_snippet):
    ns = run_snippet(SNIPPET).ns
    assert ns["similarity"] > 0.9, f"学到的权重方向应接近隐藏规则，余弦相似度只有 {ns['similarity']:.3f}"


def test_printed_output(run_snippet):
    out = run_snippet(SNIPPET).stdout
    assert f"PyTorch 版本: {torch.__version__}" in out
    assert f"CUDA 可用: {torch.cuda.is_available()}" in out
    assert "RuntimeError: mat1 and mat2 shapes cannot be multiplied (10x1 and 10x1)" in out
    assert "RuntimeError: all elements of target should be between 0 and 1" in out
    assert "第 100/100 轮" in out
    assert "测试集准确率:" in out
    assert out.count("<svg") == 1, "损失曲线应作为一张 SVG 打印出来"


def test_exercise_lr_001_needs_about_ten_times_the_epochs(run_snippet):
    ns = run_snippet(SNIPPET).ns
    (fast_net, fast), (slow_net, slow) = ns["lr_runs"][0.1], ns["lr_runs"][0.01]
    acc = ns["accuracy_of"]
    assert slow[-1] > fast[-1] + 0.1, "学习率 0.01 训练 100 轮，损失明显更高"
    # 答案说：从固定的初始参数重新训练，学习率 0.1 的结果与 5.2 略有不同
    assert fast[-1] != ns["train_losses"][-1] and abs(fast[-1] - ns["train_losses"][-1]) < 0.02
    assert acc(slow_net, ns["X_test"], ns["y_test"]) < acc(fast_net, ns["X_test"], ns["y_test"]) - 0.05
    # 追上所需的轮数约是 10 倍；1000 轮的前 100 轮就是 100 轮的那次训练（同样的初始参数）
    assert ns["slow_losses"][:100] == slow
    epoch = ns["catch_up_epoch"]
    assert (
        800 <= epoch <= 1000
        and ns["slow_losses"][epoch - 2] > ns["target_loss"] >= ns["slow_losses"][epoch - 1]
    )
    assert f"lr=0.01 要训练到第 {epoch} 轮" in run_snippet(SNIPPET).stdout


def test_exercise_noise_sets_the_ceiling_and_the_rule_wins_on_many_new_samples(run_snippet):
    ns = run_snippet(SNIPPET).ns
    results = ns["noise_results"]
    # 噪声 × 1 就是本章的数据：标签逐个相同
    labels = (ns["features"] @ ns["true_weight"] + ns["true_bias"] + ns["noise"] > 0).float().unsqueeze(1)
    assert torch.equal(labels, ns["labels"])
    assert results[0.0]["规则"] == 1.0 and results[0.0]["规则（新样本）"] == 1.0, "去掉噪声，规则本身全对"
    models = [results[s]["模型"] for s in (0.0, 1.0, 3.0)]
    rules = [results[s]["规则（新样本）"] for s in (0.0, 1.0, 3.0)]
    assert models[0] > models[1] > models[2], f"噪声越大，测试集准确率越低：{models}"
    assert rules[0] > rules[1] > rules[2], f"噪声越大，规则本身的准确率越低：{rules}"
    for scale, r in results.items():
        assert abs(r["模型"] - r["规则"]) < 0.03, f"噪声 × {scale}：模型应接近规则定下的上限"
        assert r["模型"] > r["多数类"] + 0.15, f"噪声 × {scale}：模型仍明显好于猜多数类"
        assert r["规则（新样本）"] > r["模型（新样本）"], f"噪声 × {scale}：2 万个新样本上规则更准"
    assert results[3.0]["模型"] > results[3.0]["规则"], "答案解释的现象：200 个样本上模型碰巧比规则高"
    # 去掉噪声时模型没到 100%：学到的方向差一点，分错的都是离边界很近的点
    y0 = ns["fresh_labels_by_scale"][0.0]
    noiseless = (ns["features"] @ ns["true_weight"] + ns["true_bias"] > 0).float().unsqueeze(1)
    net, _ = ns["train_hello"](ns["X_train"], noiseless[ns["train_idx"]])
    assert ns["accuracy_of"](net, ns["X_test"], noiseless[ns["test_idx"]]) == results[0.0]["模型"]
    fresh = ns["fresh_features"]
    with torch.no_grad():
        wrong = ((net(fresh) > 0).float() != y0).squeeze(1)
    margin = (fresh @ ns["true_weight"] + ns["true_bias"]).abs()
    assert wrong.sum() > 0 and margin[wrong].max() < 0.3 * margin.median()
    assert torch.cosine_similarity(net.fc1.weight.detach().flatten(), ns["true_weight"], dim=0) < 0.999


def test_exercise_twenty_samples_overfit(run_snippet):
    ns = run_snippet(SNIPPET).ns
    r = ns["size_results"]
    assert r[20][0] == 1.0, "20 个样本：训练集全部分对"
    assert r[20][0] - r[20][1] > 0.15, "20 个样本：训练集与测试集准确率差得远（过拟合）"
    assert abs(r[800][0] - r[800][1]) < 0.02, "800 个样本：两者几乎相同"
    sizes = (20, 100, 800)
    assert all(r[a][0] > r[b][0] for a, b in itertools.pairwise(sizes)), "样本越多，训练集准确率越低"
    assert all(r[a][1] < r[b][1] for a, b in itertools.pairwise(sizes)), "样本越多，测试集准确率越高"
    assert all(r[a][2] < r[b][2] for a, b in itertools.pairwise(sizes)), "样本越多，方向越接近隐藏规则"
    assert r[20][2] < 0.9


def test_exercise_bigger_model_fits_the_noise_not_the_rule(run_snippet):
    ns = run_snippet(SNIPPET).ns
    acc, mlp, linear = ns["accuracy_of"], ns["mlp"], ns["linear_net"]
    assert sum(p.numel() for p in mlp.parameters()) == 10 * 16 + 16 + 16 + 1
    X_train, y_train, X_test, y_test = ns["X_train"], ns["y_train"], ns["X_test"], ns["y_test"]
    fresh, fresh_y = ns["fresh_features"], ns["fresh_labels_by_scale"][1.0]
    assert acc(mlp, X_train, y_train) > acc(linear, X_train, y_train) + 0.02, "MLP 把训练集拟合得更好"
    assert acc(mlp, X_test, y_test) <= acc(linear, X_test, y_test), "测试集上却不比线性模型好"
    assert acc(mlp, fresh, fresh_y) < acc(linear, fresh, fresh_y), "2 万个新样本上也不如线性模型"
    assert acc(linear, fresh, fresh_y) < ns["noise_results"][1.0]["规则（新样本）"], (
        "两者都不超过规则定下的上限"
    )
