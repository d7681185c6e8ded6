import torch
from datasets import Dataset
from transformers import Trainer, TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from modeling_ternary import QuantizationWarmupCallback, TernaryForCausalLM, TernaryLinear
from tests.conftest import tiny_config


def _trainer(model, dataset, output_dir, steps, **extra):
    args = TrainingArguments(
        output_dir=str(output_dir), per_device_train_batch_size=8, max_steps=steps, learning_rate=1e-2,
        lr_scheduler_type="constant", logging_steps=5, report_to=[], save_strategy="no", use_cpu=True,
        disable_tqdm=True, seed=0,
    )
    return Trainer(model=model, args=args, train_dataset=dataset, **extra)


def test_tiny_model_overfits_a_tiny_batch_with_the_trainer(tmp_path):
    torch.manual_seed(0)
    model = TernaryForCausalLM(tiny_config(hidden_size=64, intermediate_size=128))
    input_ids = torch.randint(4, 99, (8, 16))
    dataset = Dataset.from_dict({"input_ids": input_ids.tolist(), "labels": input_ids.tolist()})
    with torch.no_grad():
        start = model(input_ids, labels=input_ids).loss.item()
    trainer = _trainer(model, dataset, tmp_path, steps=40)
    trainer.train()
    with torch.no_grad():
        end = model.eval()(input_ids, labels=input_ids).loss.item()
    assert start > 4.0  # about ln(99) at random init
    assert end < 0.1 * start, (start, end)
    assert all(isinstance(m, TernaryLinear) for m in [model.model.layers[0].self_attn.q_proj])


def test_warmup_callback_sets_lambda_from_the_global_step():
    model = TernaryForCausalLM(tiny_config(quant_warmup_steps=4))
    callback = QuantizationWarmupCallback()
    state, control = TrainerState(), TrainerControl()
    seen = []
    for step in range(6):
        state.global_step = step
        callback.on_step_begin(None, state, control, model=model)
        seen.append(model.model.layers[1].mlp.down_proj.quant_strength)
    assert seen == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    state.global_step = 1
    callback.on_step_begin(None, state, control, model=model)
    callback.on_train_end(None, state, control, model=model)
    assert model.model.layers[0].self_attn.q_proj.quant_strength == 1.0


def test_warmup_callback_in_a_trainer_run(tmp_path):
    model = TernaryForCausalLM(tiny_config())
    input_ids = torch.randint(4, 99, (8, 8))
    dataset = Dataset.from_dict({"input_ids": input_ids.tolist(), "labels": input_ids.tolist()})

    class Recorder(QuantizationWarmupCallback):
        strengths = []

        def on_step_end(self, args, state, control, model=None, **kwargs):
            self.strengths.append(model.model.layers[0].mlp.up_proj.quant_strength)

    trainer = _trainer(model, dataset, tmp_path, steps=3, callbacks=[Recorder(warmup_steps=2)])
    trainer.train()
    assert Recorder.strengths == [0.0, 0.5, 1.0]


def test_warmup_callback_rejects_bad_steps():
    import pytest

    with pytest.raises(ValueError, match=r"`warmup_steps` must be None or an integer >= 0, got -2"):
        QuantizationWarmupCallback(-2)


def test_trainer_resume_from_a_latent_checkpoint_continues_bit_exactly(tmp_path):
    input_ids = torch.randint(4, 99, (16, 12), generator=torch.Generator().manual_seed(1))
    dataset = Dataset.from_dict({"input_ids": input_ids.tolist(), "labels": input_ids.tolist()})

    class StopAt3(TrainerCallback):  # an interruption: same schedule as the full run, killed after step 3
        def on_step_end(self, args, state, control, **kwargs):
            control.should_training_stop = state.global_step == 3

    def run(output_dir, max_steps, resume=None, callbacks=None):
        torch.manual_seed(0)
        model = TernaryForCausalLM(tiny_config(activation_quant="per_token_int8", hidden_dropout=0.1))
        args = TrainingArguments(
            output_dir=str(output_dir), per_device_train_batch_size=4, max_steps=max_steps, learning_rate=3e-3,
            adam_beta2=0.98, weight_decay=0.01, warmup_steps=2, lr_scheduler_type="cosine", save_steps=3,
            save_strategy="steps", report_to=[], use_cpu=True, disable_tqdm=True, seed=0, data_seed=0,
        )
        trainer = Trainer(model=model, args=args, train_dataset=dataset, callbacks=callbacks)
        trainer.train(resume_from_checkpoint=resume)
        return model

    uninterrupted = run(tmp_path / "full", 6)
    interrupted = run(tmp_path / "interrupted", 6, callbacks=[StopAt3()])
    assert (tmp_path / "interrupted" / "checkpoint-3").is_dir()
    assert not (tmp_path / "interrupted" / "checkpoint-6").exists()
    assert not torch.equal(interrupted.lm_head.weight, uninterrupted.lm_head.weight)
    resumed = run(tmp_path / "resumed", 6, resume=str(tmp_path / "interrupted" / "checkpoint-3"))
    for (name, a), (_, b) in zip(uninterrupted.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name
