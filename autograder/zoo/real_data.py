"""Notebook 7: the mistakes the hidden tests catch without naming them (those they name are in
``autograder.checks.mistakes.real_data``, with their mutants), and correct answers in other styles."""

from ..host.submissions import Mutation

A = "07_real_data"


def bug(name, cell, old, new, description, message, bug_id=""):
    """``bug_id`` defaults to the mutant's own name: the hidden tests name these mistakes so."""
    return Mutation(name, A, cell, old, new, description, message, f"real_data.{bug_id or name}")


DETACH = "        if state is not None:\n            state = tuple(s.detach() for s in state)\n"

MUTANTS = [
]

STYLES = {
    # permute and .float(), output[-1], a loop for the confusion matrix, dict.fromkeys, stacked slices,
    # detach at the end of a chunk, sampling by inverse CDF with torch.rand.
    "loops_and_cdf": {
        "to_sequences": '''def to_sequences(images, labels):
    images = torch.as_tensor(images)
    return images.permute(1, 0, 2).float() / 16.0, torch.as_tensor(labels, dtype=torch.long)''',
        "sequence_classifier": '''class SequenceClassifier(nn.Module):
    def __init__(self, input_size, hidden_size, num_classes, num_layers=2, rnn_class=LSTM):
        super().__init__()
        self.rnn = rnn_class(input_size, hidden_size, num_layers=num_layers)
        self.head = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        output, _ = self.rnn(x)
        return self.head(output[-1])''',
        "evaluation": '''def predict(model, x):
    was_training = model.training
    model.eval()
    with torch.no_grad():
        labels = torch.max(model(x), dim=1).indices
    model.train(was_training)
    return labels


def accuracy(predicted, labels):
    return float(sum(int(p) == int(t) for p, t in zip(predicted, labels))) / len(labels)


def confusion_matrix(predicted, labels, num_classes):
    M = torch.zeros(num_classes, num_classes, dtype=torch.long)
    for t, p in zip(labels.tolist(), predicted.tolist()):
        M[t, p] += 1
    return M''',
        "vocabulary_and_encode": '''def vocabulary(text):
    return sorted(dict.fromkeys(text))


def encode(text, chars):
    return torch.tensor([chars.index(ch) for ch in text], dtype=torch.long)


def decode(indices, chars):
    """The text of a sequence of indices (the inverse of encode)."""
    return "".join(chars[k] for k in indices.tolist())''',
        "batchify_and_chunks": '''def batchify(data, batch_size):
    L = data.shape[0] // batch_size
    return torch.stack([data[b * L:(b + 1) * L] for b in range(batch_size)], dim=1)


def get_chunk(streams, i, T):
    n = min(T, len(streams) - 1 - i)
    return streams.narrow(0, i, n), streams.narrow(0, i + 1, n)''',
        "train_tbptt": '''def train_tbptt(model, chunks, optimizer, state=None):
    """One optimizer step per (x, y) chunk, the state carried over and detached; returns (losses, state)."""
    losses = []
    for x, y in chunks:
        logits, new_state = model(x, state)
        log_p = F.log_softmax(logits, dim=-1)
        loss = -log_p.gather(-1, y.unsqueeze(-1)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
        h, c = new_state
        state = (h.detach(), c.detach())
    return losses, state''',
        "sample": '''def sample(model, prefix, n, temperature=1.0, generator=None):
    text, state = prefix, None
    x = torch.tensor([model.chars.index(ch) for ch in prefix]).unsqueeze(1)
    for _ in range(n):
        with torch.no_grad():
            logits, state = model(x, state)
        z = logits[-1, 0]
        if temperature <= 0:
            k = int(torch.argmax(z))
        else:
            p = torch.exp((z - z.max()) / temperature)
            cdf = torch.cumsum(p / p.sum(), 0)
            u = torch.rand((), generator=generator, dtype=cdf.dtype)
            k = min(int(torch.searchsorted(cdf, u)), len(model.chars) - 1)
        text += model.chars[k]
        x = torch.tensor([[k]])
    return text[len(prefix):]''',
    },
    # einsum, argmax of the head on h_n, one-hot products for the counts, unfold-free views, explicit state
    # unpacking, torch.distributions-free sampling through multinomial on exp(log_softmax).
    "one_hot": {
        "to_sequences": '''def to_sequences(images, labels):
    x = torch.einsum("ntp->tnp", images.double()) / 16
    return x.to(torch.get_default_dtype()), labels.to(torch.int64)''',
        "evaluation": '''def predict(model, x):
    with torch.inference_mode():
        logits = model(x)
    return logits.argmax(-1).clone()


def accuracy(predicted, labels):
    return (predicted == labels).sum().item() / labels.numel()


def confusion_matrix(predicted, labels, num_classes):
    true = F.one_hot(labels.long(), num_classes)
    said = F.one_hot(predicted.long(), num_classes)
    return true.T @ said''',
        "batchify_and_chunks": '''def batchify(data, batch_size):
    L = len(data) // batch_size
    return data[:L * batch_size].view(batch_size, L).t().contiguous()


def get_chunk(streams, i, T):
    end = min(i + T, streams.shape[0] - 1)
    return streams[i:end], streams[i + 1:end + 1]''',
        "train_tbptt": '''def train_tbptt(model, chunks, optimizer, state=None):
    """One optimizer step per (x, y) chunk, the state carried over and detached; returns (losses, state)."""
    losses = []
    for x, y in chunks:
        if state is not None:
            h, c = state
            state = (h.detach(), c.detach())
        logits, state = model(x, state)
        V = logits.shape[-1]
        loss = F.cross_entropy(logits.view(-1, V), y.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach().item())
    return losses, state''',
        "sample": '''def sample(model, prefix, n, temperature=1.0, generator=None):
    ids = {c: k for k, c in enumerate(model.chars)}
    out = []
    with torch.no_grad():
        logits, state = model(torch.tensor([ids[c] for c in prefix]).view(-1, 1))
        for _ in range(n):
            z = logits[-1, 0]
            if temperature == 0:
                k = int(z.argmax())
            else:
                p = torch.exp(F.log_softmax(z / temperature, dim=0))
                k = int(torch.multinomial(p, num_samples=1, replacement=True, generator=generator))
            out.append(model.chars[k])
            logits, state = model(torch.tensor([[k]]), state)
    return "".join(out)''',
    },
}
