"""Seed flow (DSPy autologging, evaluation): `dspy.Evaluate` logged as a run with its score
and per-example results, as the seed's "Metrics are automatically logged" section does."""

import dspy
import mlflow
from dspy.evaluate import Evaluate

mlflow.set_experiment("skill-creation-eval")
mlflow.dspy.autolog(log_evals=True)
dspy.configure(lm=dspy.LM("openai/gpt-4o-mini", cache=False))
program = dspy.Predict("question -> answer")
dev_set = [dspy.Example(question=q, answer="A deterministic answer.").with_inputs("question")
           for q in ("Capital of France?", "Capital of Italy?")]


def your_metric(example, prediction, trace=None):
    return example.answer == prediction.answer


with mlflow.start_run(run_name="eval"):
    evaluator = Evaluate(metric=your_metric, devset=dev_set, num_threads=1)
    print(evaluator(program))
mlflow.flush_trace_async_logging()
