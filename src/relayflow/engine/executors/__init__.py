"""One executor per node type, looked up by the node's type name."""

from __future__ import annotations

from relayflow.engine.executors.base import NodeExecutor
from relayflow.engine.executors.condition import ConditionExecutor
from relayflow.engine.executors.end import EndExecutor, StopErrorExecutor
from relayflow.engine.executors.integration import IntegrationExecutor
from relayflow.engine.executors.send_message import SendMessageExecutor
from relayflow.engine.executors.split import SplitExecutor
from relayflow.engine.executors.trigger_workflow import TriggerWorkflowExecutor
from relayflow.engine.executors.update_contact import UpdateContactExecutor
from relayflow.engine.executors.wait import WaitExecutor

EXECUTORS: dict[str, NodeExecutor] = {
    "CONDITION": ConditionExecutor(),
    "SPLIT": SplitExecutor(),
    "WAIT": WaitExecutor(),
    "SEND_MESSAGE": SendMessageExecutor(),
    "INTEGRATION": IntegrationExecutor(),
    "UPDATE_CONTACT": UpdateContactExecutor(),
    "TRIGGER_WORKFLOW": TriggerWorkflowExecutor(),
    "END": EndExecutor(),
    "STOP_ERROR": StopErrorExecutor(),
}
