"""The HParams and scalar summaries, built from the ``tensorboard`` package's protos only.

Nothing here imports TensorFlow: TensorBoard's own ``hparams.summary`` module does (and its
``summary_v2`` builds no session end), so the three HParams summaries are assembled from
``api_pb2``, ``plugin_data_pb2`` and ``metadata`` the way TensorBoard's writers do.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from google.protobuf import struct_pb2
from tensorboard.compat.proto import summary_pb2
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
from tensorboard.plugins.scalar.summary_v2 import scalar_pb

from hpo_plugins.tensorboard._columns import Column

__all__ = [
    "MetricSpec",
    "experiment_proto",
    "experiment_summary",
    "scalar_summary",
    "session_end_summary",
    "session_start_summary",
]

MetricSpec = tuple[str, str, str]
"""``(tag, display name, description)`` of one metric column."""

_FLOAT32_MAX = float(np.finfo(np.float32).max)

_TYPES = {"number": api_pb2.DATA_TYPE_FLOAT64, "string": api_pb2.DATA_TYPE_STRING}


def experiment_proto(columns: Sequence[Column], metrics: Sequence[MetricSpec],
                     description: str, time_created: float) -> api_pb2.Experiment:
    """The experiment config: every hyperparameter column and every metric."""
    return api_pb2.Experiment(
        description=description, time_created_secs=time_created,
        hparam_infos=[_hparam_info(c) for c in columns],
        metric_infos=[_metric_info(*m) for m in metrics],
    )


def experiment_summary(experiment: api_pb2.Experiment) -> summary_pb2.Summary:
    """The summary that carries ``experiment`` (see :func:`experiment_proto`)."""
    return _hparams_summary(metadata.EXPERIMENT_TAG,
                            plugin_data_pb2.HParamsPluginData(experiment=experiment))


def session_start_summary(values: Mapping[str, float | str], start_time: float,
                          model_uri: str = "") -> summary_pb2.Summary:
    """The start of one session (a trial): its hyperparameter values."""
    info = plugin_data_pb2.SessionStartInfo(start_time_secs=start_time, model_uri=model_uri)
    for name, value in values.items():
        info.hparams[name].CopyFrom(_value(value))
    return _hparams_summary(metadata.SESSION_START_INFO_TAG,
                            plugin_data_pb2.HParamsPluginData(session_start_info=info))


def session_end_summary(status: int, end_time: float) -> summary_pb2.Summary:
    """The end of one session, with its ``api_pb2.Status``."""
    info = plugin_data_pb2.SessionEndInfo(status=status, end_time_secs=end_time)
    return _hparams_summary(metadata.SESSION_END_INFO_TAG,
                            plugin_data_pb2.HParamsPluginData(session_end_info=info))


def scalar_summary(tag: str, value: float) -> summary_pb2.Summary:
    """One scalar point, as float32: TensorBoard's scalar format (its Rust data server drops
    float64 scalars), so about 7 significant digits.

    A finite value beyond float32's range is written as float32's largest value of that sign
    (about ±3.4e38) rather than overflowing to infinity, which would read as a diverged trial;
    the storage keeps the exact value.
    """
    number = float(value)
    if math.isfinite(number):
        number = min(max(number, -_FLOAT32_MAX), _FLOAT32_MAX)
    return scalar_pb(tag, number)


def _hparams_summary(tag: str, data: plugin_data_pb2.HParamsPluginData) -> summary_pb2.Summary:
    summary = summary_pb2.Summary()
    summary.value.add(tag=tag, metadata=metadata.create_summary_metadata(data),
                      tensor=metadata.NULL_TENSOR)
    return summary


def _hparam_info(column: Column) -> api_pb2.HParamInfo:
    info = api_pb2.HParamInfo(name=column.label, display_name=column.label,
                              description=column.description, type=_TYPES[column.kind])
    if column.discrete is not None:
        info.domain_discrete.extend(list(column.discrete))
    elif column.interval is not None:
        info.domain_interval.min_value, info.domain_interval.max_value = column.interval
    return info


def _metric_info(tag: str, display_name: str, description: str) -> api_pb2.MetricInfo:
    return api_pb2.MetricInfo(name=api_pb2.MetricName(group="", tag=tag),
                              display_name=display_name, description=description)


def _value(value: float | str) -> struct_pb2.Value:
    if isinstance(value, str):
        return struct_pb2.Value(string_value=value)
    return struct_pb2.Value(number_value=float(value))  # NaN: an inactive parameter
