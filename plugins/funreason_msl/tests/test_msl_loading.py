import pytest
import torch
from funreason_msl import MSLCollator, MSLDataset, MSLTrainer, load_model, load_tokenizer
from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

pytest.importorskip("gguf", reason="the gguf package reads and writes GGUF files: pip install gguf")


def training_args(tmp_path, **kw):
    return TrainingArguments(
        output_dir=str(tmp_path / "out"), use_cpu=True, report_to=[], save_strategy="no", disable_tqdm=True, **kw
    )


def test_transformers_alone_leaves_a_gguf_model_untrainable_and_unsaveable(tmp_path, gguf_checkpoint):
    # What a user meets without load_model: the tensors are dequantized, the quantization config is kept.
    path, _ = gguf_checkpoint
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
    with pytest.raises(ValueError, match="purely quantized"):
        Trainer(model=model, args=training_args(tmp_path))
    with pytest.raises(ValueError, match="not serializable"):
        model.save_pretrained(tmp_path / "saved")


def test_load_model_gives_the_gguf_weights_ready_for_trainer_and_save_pretrained(tmp_path, gguf_checkpoint):
    path, original = gguf_checkpoint
    model = load_model(path)
    assert not getattr(model, "is_quantized", False) and getattr(model.config, "quantization_config", None) is None
    ids = torch.tensor([[2, 40, 41, 42, 43, 3]])
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, original(ids).logits, atol=1e-5)
    Trainer(model=model, args=training_args(tmp_path))
    model.save_pretrained(tmp_path / "saved")
    again = AutoModelForCausalLM.from_pretrained(tmp_path / "saved")
    with torch.no_grad():
        assert torch.equal(again(ids).logits, model(ids).logits)
    assert load_model(path.parent, gguf_file=path.name, dtype=torch.bfloat16).dtype == torch.bfloat16


def test_load_tokenizer_reads_the_tokenizer_stored_in_a_gguf_file(gguf_checkpoint, plain_tokenizer):
    path, _ = gguf_checkpoint
    text = '<|im_start|>assistant\n<think>Rome.</think>\n\n[get_weather(city="Rome")]<|im_end|>\n'
    for tokenizer in (load_tokenizer(path), load_tokenizer(path.parent, gguf_file=path.name)):
        assert tokenizer.is_fast and tokenizer.chat_template == plain_tokenizer.chat_template
        assert tokenizer(text)["input_ids"] == plain_tokenizer(text)["input_ids"]


def test_a_folder_holding_gguf_files_names_them_instead_of_blaming_sentencepiece(gguf_checkpoint):
    path, _ = gguf_checkpoint
    with pytest.raises(ValueError, match=r"holds tiny-chat.gguf: name the GGUF file \(--gguf-file tiny-chat.gguf"):
        load_tokenizer(path.parent)


def test_a_gguf_checkpoint_trains_with_the_multiscale_loss(tmp_path, gguf_checkpoint, records):
    path, _ = gguf_checkpoint
    tokenizer, model = load_tokenizer(path), load_model(path)
    dataset = MSLDataset(records[:8], tokenizer, max_length=512)
    trainer = MSLTrainer(
        model=model,
        args=training_args(tmp_path, max_steps=4, per_device_train_batch_size=8, learning_rate=5e-3, logging_steps=1),
        train_dataset=dataset,
        data_collator=MSLCollator(tokenizer.pad_token_id),
        tokenizer_for_msl=tokenizer,  # '</think>' is several tokens here: not needed, not refused
    )
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert losses[-1] < losses[0]
    model.save_pretrained(tmp_path / "trained")
    assert (tmp_path / "trained" / "model.safetensors").is_file()
